{{/*
Helpers shared by the Courier templates.
*/}}

{{/* Chart name, overridable. */}}
{{- define "courier.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Resource name prefix: the release name, followed by the chart name unless the release name contains it.
Component names are appended to it, so it is kept short enough for them (and for the edge's pod names,
which become subscription names).
*/}}
{{- define "courier.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of one component's resources: (dict "root" $ "component" "api-gateway") */}}
{{- define "courier.componentName" -}}
{{- printf "%s-%s" (include "courier.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "courier.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object: (dict "root" $ "component" "api-gateway") */}}
{{- define "courier.labels" -}}
helm.sh/chart: {{ include "courier.chart" .root }}
{{ include "courier.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: courier
{{- end }}

{{/* Selector labels: (dict "root" $ "component" "api-gateway") */}}
{{- define "courier.selectorLabels" -}}
app.kubernetes.io/name: {{ include "courier.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Image reference of a Courier component: (dict "root" $ "image" .Values.apiGateway.image).
image.registry is prepended to a repository without a "/"; a digest pins the image.
*/}}
{{- define "courier.image" -}}
{{- $repo := .image.repository }}
{{- if and .root.Values.image.registry (not (contains "/" $repo)) }}
{{- $repo = printf "%s/%s" (trimSuffix "/" .root.Values.image.registry) $repo }}
{{- end }}
{{- $tag := .image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion | toString }}
{{- if .image.digest }}
{{- printf "%s:%s@%s" $repo $tag .image.digest }}
{{- else }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}
{{- end }}

{{/* Name of a component's ServiceAccount: (dict "root" $ "component" "api-gateway" "sa" .Values.apiGateway.serviceAccount) */}}
{{- define "courier.serviceAccountName" -}}
{{- if .sa.create }}
{{- default (include "courier.componentName" .) .sa.name }}
{{- else }}
{{- default "default" .sa.name }}
{{- end }}
{{- end }}

{{/* ServiceAccount annotations, with the Workload Identity one: same dict as courier.serviceAccountName */}}
{{- define "courier.serviceAccountAnnotations" -}}
{{- $ann := deepCopy (.sa.annotations | default dict) }}
{{- if .root.Values.gcp.workloadIdentity.enabled }}
{{- $email := .sa.gcpServiceAccount }}
{{- if not $email }}
{{- $email = printf "%s@%s.iam.gserviceaccount.com" .sa.gcpServiceAccountName .root.Values.gcp.project }}
{{- end }}
{{- $_ := set $ann "iam.gke.io/gcp-service-account" $email }}
{{- end }}
{{- with $ann }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{- define "courier.pubsubEmulatorHost" -}}
{{- printf "%s:%d" (include "courier.componentName" (dict "root" . "component" "pubsub-emulator")) (int .Values.emulators.pubsub.port) }}
{{- end }}

{{- define "courier.firestoreEmulatorHost" -}}
{{- printf "%s:%d" (include "courier.componentName" (dict "root" . "component" "firestore-emulator")) (int .Values.emulators.firestore.port) }}
{{- end }}

{{/* The OTLP endpoint: explicit, else the in-cluster trace viewer, else none. */}}
{{- define "courier.otlpEndpoint" -}}
{{- if .Values.telemetry.otlpEndpoint }}
{{- .Values.telemetry.otlpEndpoint }}
{{- else if .Values.traceViewer.enabled }}
{{- printf "http://%s:4317" (include "courier.componentName" (dict "root" . "component" "jaeger")) }}
{{- end }}
{{- end }}

{{/*
Settings shared by every component, as a YAML map of environment variables. The ConfigMap holds them
for the Deployments and the CronJob; the pre-install hook Job, which runs before the ConfigMap exists,
gets the same map inline.
*/}}
{{- define "courier.sharedConfig" -}}
GOOGLE_CLOUD_PROJECT: {{ required "gcp.project is required (the Google Cloud project; any id with the emulators)" .Values.gcp.project | quote }}
PUBSUB_INGRESS_TOPIC: {{ .Values.pubsub.topics.ingress | quote }}
PUBSUB_DELIVERIES_TOPIC: {{ .Values.pubsub.topics.deliveries | quote }}
PUBSUB_DEADLETTER_TOPIC: {{ .Values.pubsub.topics.deadletter | quote }}
PUBSUB_INGRESS_SUBSCRIPTION: {{ .Values.pubsub.subscriptions.ingress | quote }}
PUBSUB_DEADLETTER_SUBSCRIPTION: {{ .Values.pubsub.subscriptions.deadletter | quote }}
PUBSUB_EDGE_SUBSCRIPTION_PREFIX: {{ .Values.pubsub.subscriptions.edgePrefix | quote }}
INGRESS_MAX_DELIVERY_ATTEMPTS: {{ .Values.pubsub.ingress.maxDeliveryAttempts | quote }}
INGRESS_MIN_BACKOFF: {{ .Values.pubsub.ingress.minBackoff | quote }}
INGRESS_MAX_BACKOFF: {{ .Values.pubsub.ingress.maxBackoff | quote }}
INGRESS_ACK_DEADLINE: {{ .Values.pubsub.ingress.ackDeadline | quote }}
INGRESS_ORDERING: {{ .Values.pubsub.ingress.ordering | quote }}
DEADLETTER_RETENTION: {{ .Values.pubsub.deadletterRetention | quote }}
EDGE_SUBSCRIPTION_EXPIRATION: {{ .Values.pubsub.edge.subscriptionExpiration | quote }}
EDGE_MESSAGE_RETENTION: {{ .Values.pubsub.edge.messageRetention | quote }}
EDGE_ACK_DEADLINE: {{ .Values.pubsub.edge.ackDeadline | quote }}
{{- with include "courier.otlpEndpoint" . }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
OTEL_TRACES_SAMPLER: {{ .Values.telemetry.tracesSampler | quote }}
OTEL_TRACES_SAMPLER_ARG: {{ .Values.telemetry.tracesSamplerArg | quote }}
LOG_LEVEL: {{ .Values.telemetry.logLevel | quote }}
LOG_FORMAT: {{ .Values.telemetry.logFormat | quote }}
{{- with .Values.auth.jwksURL }}
AUTH_JWKS_URL: {{ . | quote }}
{{- end }}
{{- with .Values.auth.issuer }}
AUTH_ISSUER: {{ . | quote }}
{{- end }}
{{- with .Values.auth.audience }}
AUTH_AUDIENCE: {{ . | quote }}
{{- end }}
{{- if .Values.emulators.enabled }}
PUBSUB_EMULATOR_HOST: {{ include "courier.pubsubEmulatorHost" . | quote }}
FIRESTORE_EMULATOR_HOST: {{ include "courier.firestoreEmulatorHost" . | quote }}
{{- end }}
{{- range $k, $v := .Values.extraConfig }}
{{ $k }}: {{ $v | toString | quote }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding AUTH_HS256_SECRET, and its key. */}}
{{- define "courier.hs256SecretName" -}}
{{- default (include "courier.componentName" (dict "root" . "component" "auth")) .Values.auth.hs256.existingSecret }}
{{- end }}
{{- define "courier.hs256SecretKey" -}}
{{- if .Values.auth.hs256.existingSecret }}{{ .Values.auth.hs256.existingSecretKey }}{{ else }}AUTH_HS256_SECRET{{ end }}
{{- end }}

{{/* Refuses configurations that would deploy but not work, or would work for an attacker. */}}
{{- define "courier.validate" -}}
{{- $a := .Values.auth }}
{{- if and (not $a.jwksURL) (not $a.hs256.enabled) }}
{{- fail "auth: set auth.jwksURL (production) or enable auth.hs256 (development); without either no token verifies" }}
{{- end }}
{{- if and $a.hs256.enabled (not $a.hs256.existingSecret) (lt (len $a.hs256.secret) 16) }}
{{- fail "auth.hs256.secret must be at least 16 bytes (or name an auth.hs256.existingSecret)" }}
{{- end }}
{{- /* A shared JWKS (Firebase's signs every project's tokens) proves nothing without iss and aud. */}}
{{- if and $a.jwksURL (or (not $a.issuer) (not $a.audience)) }}
{{- fail "auth.jwksURL needs both auth.issuer and auth.audience: a key set such as Firebase's signs the tokens of every project, so without them a token minted in anyone's project for any user is accepted" }}
{{- end }}
{{- if and $a.hs256.enabled .Values.ingress.enabled (not .Values.devCluster) }}
{{- fail "auth.hs256 (a shared development secret) together with ingress.enabled exposes tokens anyone holding the secret can mint: set devCluster: true only if this is a development cluster with no real users, else use auth.jwksURL" }}
{{- end }}
{{- if and $a.hs256.devTokens (not .Values.devCluster) }}
{{- fail "auth.hs256.devTokens (DEV_TOKENS=true: POST /dev/token mints a token for any user) is for development clusters only: set devCluster: true if this is one" }}
{{- end }}
{{- if and $a.hs256.devTokens (not $a.hs256.enabled) }}
{{- fail "auth.hs256.devTokens needs auth.hs256.enabled: development tokens are signed with that secret" }}
{{- end }}
{{- if and .Values.networkPolicy.enabled .Values.ingress.enabled (not .Values.networkPolicy.ingressFrom) }}
{{- fail "networkPolicy.ingressFrom is empty: with default-deny policies the ingress could not reach the gateway or ws-edge (GKE: the load balancer ranges 35.191.0.0/16 and 130.211.0.0/22)" }}
{{- end }}
{{- /* The worker dead-letters what exceeds its limits: they must admit everything the gateway accepts. */}}
{{- $gw := .Values.apiGateway.env }}
{{- $wk := .Values.pipelineWorker.env }}
{{- range $pair := list (list "MAX_RECIPIENTS" "WORKER_MAX_RECIPIENTS") (list "MAX_PAYLOAD_BYTES" "WORKER_MAX_PAYLOAD_BYTES") }}
{{- $g := get $gw (index $pair 0) | toString }}
{{- $w := get $wk (index $pair 1) | toString }}
{{- if and $g $w (gt (int $g) (int $w)) }}
{{- fail (printf "pipelineWorker.env.%s (%s) is below apiGateway.env.%s (%s): the worker would dead-letter messages the gateway accepted" (index $pair 1) $w (index $pair 0) $g) }}
{{- end }}
{{- end }}
{{- range $key, $c := dict "apiGateway" .Values.apiGateway "pipelineWorker" .Values.pipelineWorker "wsEdge" .Values.wsEdge }}
{{- if le (int $c.terminationGracePeriodSeconds) (int $c.shutdownTimeoutSeconds) }}
{{- fail (printf "%s.terminationGracePeriodSeconds (%v) must exceed %s.shutdownTimeoutSeconds (%v): Kubernetes would kill the pod mid-drain" $key $c.terminationGracePeriodSeconds $key $c.shutdownTimeoutSeconds) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Pod scheduling defaults: spread replicas over nodes and zones when possible. (dict "root" $ "component" "ws-edge" "c" .Values.wsEdge) */}}
{{- define "courier.scheduling" -}}
{{- with .c.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
topologySpreadConstraints:
{{- if .c.topologySpreadConstraints }}
  {{- toYaml .c.topologySpreadConstraints | nindent 2 }}
{{- else }}
{{- range list "kubernetes.io/hostname" "topology.kubernetes.io/zone" }}
  - maxSkew: 1
    topologyKey: {{ . }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "courier.selectorLabels" $ | nindent 8 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Pod annotations: metrics scraping and a checksum of the settings, so a change rolls the pods. */}}
{{- define "courier.podAnnotations" -}}
checksum/config: {{ include "courier.sharedConfig" .root | sha256sum }}
{{- if .root.Values.auth.hs256.enabled }}
checksum/auth: {{ printf "%s/%s/%s" .root.Values.auth.hs256.secret .root.Values.auth.hs256.existingSecret .root.Values.auth.hs256.existingSecretKey | sha256sum }}
{{- end }}
{{- if .root.Values.metrics.annotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .root.Values.metrics.port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- with .c.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Environment every Courier container gets: its pod identity from the downward API. (dict "kind" "deployment" "name" $name) */}}
{{- define "courier.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: OTEL_RESOURCE_ATTRIBUTES
  value: k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME),k8s.{{ .kind }}.name={{ .name }}
{{- end }}

{{/*
AUTH_HS256_SECRET from its Secret, when development tokens are on; DEV_TOKENS=true (POST /dev/token) only
when auth.hs256.devTokens says so, which courier.validate allows on a devCluster only.
*/}}
{{- define "courier.authEnv" -}}
{{- if .Values.auth.hs256.enabled }}
- name: AUTH_HS256_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "courier.hs256SecretName" . }}
      key: {{ include "courier.hs256SecretKey" . }}
{{- if .Values.auth.hs256.devTokens }}
- name: DEV_TOKENS
  value: "true"
{{- end }}
{{- end }}
{{- end }}

{{/* A component's settings map rendered as env, skipping empty values (the service default applies). */}}
{{- define "courier.settingsEnv" -}}
{{- range $k, $v := . }}
{{- if ne (toString $v) "" }}
- name: {{ $k }}
  value: {{ toString $v | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The /tmp emptyDir that lets containers keep a read-only root filesystem. */}}
{{- define "courier.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}
{{- define "courier.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}
