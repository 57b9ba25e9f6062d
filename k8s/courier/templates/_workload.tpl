{{/*
Building blocks of the three services' objects. Each takes
  (dict "root" $ "component" "api-gateway" "c" .Values.apiGateway ...)
and the service's own template (api-gateway.yaml, ...) says what differs: ports, env, metrics.
*/}}

{{/*
The Deployment. Extra keys: "ports" (list of dicts name/port; the first is the HTTP port serving
/healthz and /readyz) and "env" (rendered EnvVar list of the service's own variables). Every service also
gets the admin port "admin" (metrics.port, ADMIN_ADDR), which serves /metrics and which no Service behind the
ingress exposes.
*/}}
{{- define "courier.deployment" -}}
{{- $name := include "courier.componentName" . }}
{{- $root := .root }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "courier.labels" . | nindent 4 }}
spec:
  {{- if not .c.autoscaling.enabled }}
  replicas: {{ .c.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  # New pods are ready before old ones drain, so capacity never dips during a rollout.
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  selector:
    matchLabels:
      {{- include "courier.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "courier.selectorLabels" . | nindent 8 }}
        {{- with .c.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- include "courier.podAnnotations" (dict "root" $root "c" .c) | nindent 8 }}
    spec:
      serviceAccountName: {{ include "courier.serviceAccountName" (dict "root" $root "component" .component "sa" .c.serviceAccount) }}
      # Courier never calls the Kubernetes API (Workload Identity needs no token in the pod).
      automountServiceAccountToken: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      terminationGracePeriodSeconds: {{ .c.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      {{- include "courier.scheduling" . | trim | nindent 6 }}
      containers:
        - name: {{ .component }}
          image: {{ include "courier.image" (dict "root" $root "image" .c.image) }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          ports:
            {{- range .ports }}
            - name: {{ .name }}
              containerPort: {{ .port }}
              protocol: TCP
            {{- end }}
            - name: admin
              containerPort: {{ $root.Values.metrics.port }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ include "courier.componentName" (dict "root" $root "component" "config") }}
          env:
            {{- include "courier.podEnv" (dict "kind" "deployment" "name" $name) | nindent 12 }}
            - name: SHUTDOWN_TIMEOUT
              value: "{{ .c.shutdownTimeoutSeconds }}s"
            - name: ADMIN_ADDR
              value: ":{{ $root.Values.metrics.port }}"
            {{- with .env }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with include "courier.settingsEnv" .c.env | trim }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with .c.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          livenessProbe:
            {{- toYaml .c.livenessProbe | nindent 12 }}
          readinessProbe:
            {{- toYaml .c.readinessProbe | nindent 12 }}
          resources:
            {{- toYaml .c.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            {{- include "courier.tmpMount" . | nindent 12 }}
      volumes:
        {{- include "courier.tmpVolume" . | nindent 8 }}
{{- end }}

{{/* The ServiceAccount, annotated for Workload Identity. */}}
{{- define "courier.serviceAccount" -}}
{{- if .c.serviceAccount.create }}
{{- $sa := dict "root" .root "component" .component "sa" .c.serviceAccount }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "courier.serviceAccountName" $sa }}
  labels:
    {{- include "courier.labels" . | nindent 4 }}
  {{- with include "courier.serviceAccountAnnotations" $sa }}
  annotations:
    {{- . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end }}
{{- end }}

{{/* The PodDisruptionBudget. */}}
{{- define "courier.pdb" -}}
{{- if .c.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "courier.componentName" . }}
  labels:
    {{- include "courier.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .c.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "courier.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{/* The HorizontalPodAutoscaler on CPU; extra key "metrics": rendered MetricSpec list to add. */}}
{{- define "courier.hpa" -}}
{{- if .c.autoscaling.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "courier.componentName" . }}
  labels:
    {{- include "courier.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "courier.componentName" . }}
  minReplicas: {{ .c.autoscaling.minReplicas }}
  maxReplicas: {{ .c.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .c.autoscaling.targetCPUUtilizationPercentage }}
    {{- with .metrics }}
    {{- . | nindent 4 }}
    {{- end }}
  {{- with .c.autoscaling.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
Scrape objects for the admin port "admin": PodMonitoring (GKE) selects the pods; a ServiceMonitor selects
Services, so it gets a headless <component>-metrics Service carrying only the admin port. That Service is
separate from the one the ingress routes to (which never exposes the admin port), and is labelled
courier/metrics so the ServiceMonitor cannot select the other.
*/}}
{{- define "courier.monitors" -}}
{{- $m := .root.Values.metrics }}
{{- if $m.podMonitoring.enabled }}
---
apiVersion: monitoring.googleapis.com/v1
kind: PodMonitoring
metadata:
  name: {{ include "courier.componentName" . }}
  labels:
    {{- include "courier.labels" . | nindent 4 }}
spec:
  selector:
    matchLabels:
      {{- include "courier.selectorLabels" . | nindent 6 }}
  endpoints:
    - port: admin
      path: /metrics
      interval: {{ $m.podMonitoring.interval }}
{{- end }}
{{- if $m.serviceMonitor.enabled }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ printf "%s-metrics" (include "courier.componentName" .) | trunc 63 | trimSuffix "-" }}
  labels:
    {{- include "courier.labels" . | nindent 4 }}
    courier/metrics: "true"
spec:
  type: ClusterIP
  clusterIP: None
  selector:
    {{- include "courier.selectorLabels" . | nindent 4 }}
  ports:
    - name: admin
      port: {{ $m.port }}
      targetPort: admin
      protocol: TCP
      appProtocol: http
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "courier.componentName" . }}
  labels:
    {{- include "courier.labels" . | nindent 4 }}
    {{- with $m.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "courier.selectorLabels" . | nindent 6 }}
      courier/metrics: "true"
  endpoints:
    - port: admin
      path: /metrics
      interval: {{ $m.serviceMonitor.interval }}
{{- end }}
{{- end }}
