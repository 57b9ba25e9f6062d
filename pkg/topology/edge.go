package topology

import (
	"strconv"
	"strings"
	"time"
)

// Labels on each ws-edge pod's subscription. The edge refreshes the
// heartbeat while it runs; `courierctl sweep` deletes edge subscriptions
// whose heartbeat went stale (their pod died without deleting them). We need
// our own liveness signal because the expiration policy only fires after a
// day on GCP and never on the emulator.
const (
	EdgeRoleLabel      = "courier-role"
	EdgePodLabel       = "courier-pod"
	EdgeHeartbeatLabel = "courier-heartbeat" // unix seconds of the last refresh
)

// EdgeLabels returns the labels of podName's subscription with a heartbeat
// at now. Label values allow lowercase letters, digits, "-" and "_" (at most
// 63 characters), which unix seconds and a sanitized pod name satisfy.
func EdgeLabels(podName string, now time.Time) map[string]string {
	return map[string]string{
		EdgeRoleLabel:      "edge",
		EdgePodLabel:       podName,
		EdgeHeartbeatLabel: strconv.FormatInt(now.Unix(), 10),
	}
}

// EdgeHeartbeat returns the heartbeat recorded in an edge subscription's
// labels, and false when there is none or it does not parse.
func EdgeHeartbeat(labels map[string]string) (time.Time, bool) {
	v, ok := labels[EdgeHeartbeatLabel]
	if !ok {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// EdgePodName returns the pod that owns an edge subscription, given its
// short id or full path, or false when the subscription is not an edge one.
func (c Config) EdgePodName(subscription string) (string, bool) {
	id := subscription
	if i := strings.LastIndex(id, "/"); i >= 0 {
		id = id[i+1:]
	}
	pod, ok := strings.CutPrefix(id, c.EdgeSubscriptionPrefix)
	return pod, ok && pod != ""
}
