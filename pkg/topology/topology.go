// Package topology declares Courier's Pub/Sub topics and subscriptions once,
// in code, and applies them idempotently: create what is missing, update what
// differs, report what was done. `courierctl provision` runs it; so do the
// tests, against the emulator.
package topology

import (
	"context"

	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/courierhq/courier/pkg/config"
)

// Config names every topic and subscription and the delivery policies.
type Config struct {
	Project string

	IngressTopic    string
	DeliveriesTopic string
	DeadLetterTopic string
	// NotifyTopic carries offline-notification events (pipeline-worker,
	// NOTIFY_ENABLED) for a push service.
	NotifyTopic            string
	IngressSubscription    string
	DeadLetterSubscription string
	// EdgeSubscriptionPrefix + pod name is each ws-edge pod's subscription.
	EdgeSubscriptionPrefix string

	// MaxDeliveryAttempts before Pub/Sub forwards an ingress message to the
	// dead-letter topic (5..100 on GCP).
	MaxDeliveryAttempts int
	MinBackoff          time.Duration
	MaxBackoff          time.Duration
	IngressAckDeadline  time.Duration
	// DeadLetterRetention is how long dead letters wait for inspection.
	DeadLetterRetention time.Duration
	// IngressOrdering enables message ordering on the ingress subscription,
	// so one sender's messages are processed in publish order.
	IngressOrdering bool

	// EdgeExpiration deletes an edge subscription nobody pulled for this long
	// (the backstop when a pod dies without deleting it; GCP minimum 24h).
	EdgeExpiration time.Duration
	// EdgeRetention is how long undelivered deliveries stay on an edge
	// subscription; short because clients resume from Firestore anyway.
	EdgeRetention   time.Duration
	EdgeAckDeadline time.Duration
}

// FromEnv reads the topology settings; every name and bound has a variable.
func FromEnv(e *config.Env) Config {
	c := Config{
		Project:                e.String("GOOGLE_CLOUD_PROJECT", "courier-local"),
		IngressTopic:           e.String("PUBSUB_INGRESS_TOPIC", "courier-ingress"),
		DeliveriesTopic:        e.String("PUBSUB_DELIVERIES_TOPIC", "courier-deliveries"),
		DeadLetterTopic:        e.String("PUBSUB_DEADLETTER_TOPIC", "courier-deadletter"),
		NotifyTopic:            e.String("NOTIFY_TOPIC", "courier-notify"),
		IngressSubscription:    e.String("PUBSUB_INGRESS_SUBSCRIPTION", "courier-ingress-worker"),
		DeadLetterSubscription: e.String("PUBSUB_DEADLETTER_SUBSCRIPTION", "courier-deadletter-inspect"),
		EdgeSubscriptionPrefix: e.String("PUBSUB_EDGE_SUBSCRIPTION_PREFIX", "courier-edge-"),
		MaxDeliveryAttempts:    e.Int("INGRESS_MAX_DELIVERY_ATTEMPTS", 5, 5, 100),
		MinBackoff:             e.Duration("INGRESS_MIN_BACKOFF", time.Second, 0),
		MaxBackoff:             e.Duration("INGRESS_MAX_BACKOFF", time.Minute, 0),
		IngressAckDeadline:     e.Duration("INGRESS_ACK_DEADLINE", 30*time.Second, 10*time.Second),
		DeadLetterRetention:    e.Duration("DEADLETTER_RETENTION", 7*24*time.Hour, 10*time.Minute),
		IngressOrdering:        e.Bool("INGRESS_ORDERING", true),
		EdgeExpiration:         e.Duration("EDGE_SUBSCRIPTION_EXPIRATION", 24*time.Hour, time.Hour),
		EdgeRetention:          e.Duration("EDGE_MESSAGE_RETENTION", 10*time.Minute, 10*time.Minute),
		EdgeAckDeadline:        e.Duration("EDGE_ACK_DEADLINE", 10*time.Second, 10*time.Second),
	}
	e.Check("INGRESS_MAX_BACKOFF", c.Validate())
	return c
}

// Default returns the defaults for project, as FromEnv would with no
// variables set.
func Default(project string) Config {
	c := FromEnv(config.FromMap(nil))
	c.Project = project
	return c
}

// Validate checks relations between settings.
func (c Config) Validate() error {
	if c.MinBackoff > c.MaxBackoff {
		return fmt.Errorf("min backoff %s exceeds max backoff %s", c.MinBackoff, c.MaxBackoff)
	}
	if c.MaxBackoff > 600*time.Second {
		return fmt.Errorf("max backoff %s exceeds Pub/Sub's 600s", c.MaxBackoff)
	}
	return nil
}

// TopicPath and SubscriptionPath give fully qualified resource names.
func (c Config) TopicPath(id string) string { return "projects/" + c.Project + "/topics/" + id }
func (c Config) SubscriptionPath(id string) string {
	return "projects/" + c.Project + "/subscriptions/" + id
}

// EdgeSubscriptionID is the subscription of the ws-edge pod podName.
func (c Config) EdgeSubscriptionID(podName string) string { return c.EdgeSubscriptionPrefix + podName }

// Action is one thing Apply did or found.
type Action struct {
	Kind   string // "topic" or "subscription"
	Name   string
	Result string // "created", "updated", "unchanged", "drift"
	Detail string
}

func (a Action) String() string {
	s := fmt.Sprintf("%-12s %-40s %s", a.Kind, a.Name, a.Result)
	if a.Detail != "" {
		s += " (" + a.Detail + ")"
	}
	return s
}

// Report lists what Apply did, in order.
type Report []Action

// Changed reports whether Apply created or updated anything.
func (r Report) Changed() bool {
	for _, a := range r {
		if a.Result == "created" || a.Result == "updated" {
			return true
		}
	}
	return false
}

// Desired returns the declared topics and subscriptions.
func (c Config) Desired() (topics []*pubsubpb.Topic, subs []*pubsubpb.Subscription) {
	topics = []*pubsubpb.Topic{
		{Name: c.TopicPath(c.IngressTopic)},
		{Name: c.TopicPath(c.DeliveriesTopic)},
		{Name: c.TopicPath(c.DeadLetterTopic)},
		{Name: c.TopicPath(c.NotifyTopic)},
	}
	subs = []*pubsubpb.Subscription{
		{
			Name:                  c.SubscriptionPath(c.IngressSubscription),
			Topic:                 c.TopicPath(c.IngressTopic),
			AckDeadlineSeconds:    int32(c.IngressAckDeadline / time.Second),
			EnableMessageOrdering: c.IngressOrdering,
			DeadLetterPolicy: &pubsubpb.DeadLetterPolicy{
				DeadLetterTopic:     c.TopicPath(c.DeadLetterTopic),
				MaxDeliveryAttempts: int32(c.MaxDeliveryAttempts),
			},
			RetryPolicy: &pubsubpb.RetryPolicy{
				MinimumBackoff: durationpb.New(c.MinBackoff),
				MaximumBackoff: durationpb.New(c.MaxBackoff),
			},
			// Never expire the worker's subscription.
			ExpirationPolicy: &pubsubpb.ExpirationPolicy{},
		},
		{
			Name:                     c.SubscriptionPath(c.DeadLetterSubscription),
			Topic:                    c.TopicPath(c.DeadLetterTopic),
			AckDeadlineSeconds:       60,
			MessageRetentionDuration: durationpb.New(c.DeadLetterRetention),
			ExpirationPolicy:         &pubsubpb.ExpirationPolicy{},
		},
	}
	return topics, subs
}

// EdgeSubscription returns the declared subscription of one ws-edge pod.
// filter, when not empty, is a Pub/Sub filter expression (targeted routing).
func (c Config) EdgeSubscription(podName, filter string) *pubsubpb.Subscription {
	return &pubsubpb.Subscription{
		Name:                     c.SubscriptionPath(c.EdgeSubscriptionID(podName)),
		Topic:                    c.TopicPath(c.DeliveriesTopic),
		AckDeadlineSeconds:       int32(c.EdgeAckDeadline / time.Second),
		MessageRetentionDuration: durationpb.New(c.EdgeRetention),
		ExpirationPolicy:         &pubsubpb.ExpirationPolicy{Ttl: durationpb.New(c.EdgeExpiration)},
		Filter:                   filter,
		Labels:                   map[string]string{"courier-role": "edge"},
	}
}

// Apply makes the project's topics and subscriptions match c.
func Apply(ctx context.Context, client *pubsub.Client, c Config) (Report, error) {
	return apply(ctx, client, c, false)
}

// Plan reports what Apply would do, changing nothing ("created" and
// "updated" then mean "would be").
func Plan(ctx context.Context, client *pubsub.Client, c Config) (Report, error) {
	return apply(ctx, client, c, true)
}

func apply(ctx context.Context, client *pubsub.Client, c Config, dryRun bool) (Report, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	topics, subs := c.Desired()
	var rep Report
	for _, t := range topics {
		a, err := ensureTopic(ctx, client, t, dryRun)
		if err != nil {
			return rep, err
		}
		rep = append(rep, a)
	}
	for _, s := range subs {
		a, err := ensureSubscription(ctx, client, s, dryRun)
		if err != nil {
			return rep, err
		}
		rep = append(rep, a)
	}
	return rep, nil
}

func ensureTopic(ctx context.Context, client *pubsub.Client, t *pubsubpb.Topic, dryRun bool) (Action, error) {
	a := Action{Kind: "topic", Name: t.Name}
	_, err := client.TopicAdminClient.GetTopic(ctx, &pubsubpb.GetTopicRequest{Topic: t.Name})
	switch {
	case err == nil:
		a.Result = "unchanged"
		return a, nil
	case status.Code(err) != codes.NotFound:
		return a, fmt.Errorf("get topic %s: %w", t.Name, err)
	}
	a.Result = "created"
	if dryRun {
		return a, nil
	}
	if _, err := client.TopicAdminClient.CreateTopic(ctx, t); err != nil && status.Code(err) != codes.AlreadyExists {
		return a, fmt.Errorf("create topic %s: %w", t.Name, err)
	}
	return a, nil
}

// EnsureSubscription creates want, or updates the mutable fields that differ.
// Fields Pub/Sub cannot change on an existing subscription (topic, ordering,
// filter) are reported as drift, never fixed by deleting it: that would drop
// its backlog.
func EnsureSubscription(ctx context.Context, client *pubsub.Client, want *pubsubpb.Subscription) (Action, error) {
	return ensureSubscription(ctx, client, want, false)
}

func ensureSubscription(ctx context.Context, client *pubsub.Client, want *pubsubpb.Subscription, dryRun bool) (Action, error) {
	a := Action{Kind: "subscription", Name: want.Name}
	got, err := client.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: want.Name})
	if status.Code(err) == codes.NotFound {
		if dryRun {
			a.Result = "created"
			return a, nil
		}
		if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, want); err != nil {
			if status.Code(err) == codes.AlreadyExists {
				a.Result = "unchanged"
				return a, nil
			}
			return a, fmt.Errorf("create subscription %s: %w", want.Name, err)
		}
		a.Result = "created"
		return a, nil
	}
	if err != nil {
		return a, fmt.Errorf("get subscription %s: %w", want.Name, err)
	}
	mask, drift := Diff(got, want)
	a.Result = "unchanged"
	if len(mask) > 0 && dryRun {
		a.Result, a.Detail = "updated", strings.Join(mask, ",")
	} else if len(mask) > 0 {
		_, err := client.SubscriptionAdminClient.UpdateSubscription(ctx, &pubsubpb.UpdateSubscriptionRequest{
			Subscription: want,
			UpdateMask:   &fieldmaskpb.FieldMask{Paths: mask},
		})
		if err != nil {
			return a, fmt.Errorf("update subscription %s (%s): %w", want.Name, strings.Join(mask, ","), err)
		}
		a.Result = "updated"
		a.Detail = strings.Join(mask, ",")
	}
	if len(drift) > 0 {
		if a.Result == "unchanged" {
			a.Result = "drift"
		}
		a.Detail = strings.TrimPrefix(a.Detail+"; immutable fields differ: "+strings.Join(drift, ","), "; ")
	}
	return a, nil
}

// Diff compares an existing subscription with the declared one and returns
// the update-mask paths of mutable fields that differ, and the names of
// immutable ones that differ.
func Diff(got, want *pubsubpb.Subscription) (mask, drift []string) {
	if got.GetAckDeadlineSeconds() != want.GetAckDeadlineSeconds() {
		mask = append(mask, "ack_deadline_seconds")
	}
	if want.MessageRetentionDuration != nil && got.GetMessageRetentionDuration().AsDuration() != want.GetMessageRetentionDuration().AsDuration() {
		mask = append(mask, "message_retention_duration")
	}
	if got.GetDeadLetterPolicy().GetDeadLetterTopic() != want.GetDeadLetterPolicy().GetDeadLetterTopic() ||
		got.GetDeadLetterPolicy().GetMaxDeliveryAttempts() != want.GetDeadLetterPolicy().GetMaxDeliveryAttempts() {
		mask = append(mask, "dead_letter_policy")
	}
	if got.GetRetryPolicy().GetMinimumBackoff().AsDuration() != want.GetRetryPolicy().GetMinimumBackoff().AsDuration() ||
		got.GetRetryPolicy().GetMaximumBackoff().AsDuration() != want.GetRetryPolicy().GetMaximumBackoff().AsDuration() ||
		(got.RetryPolicy == nil) != (want.RetryPolicy == nil) {
		mask = append(mask, "retry_policy")
	}
	if want.ExpirationPolicy != nil && got.GetExpirationPolicy().GetTtl().AsDuration() != want.GetExpirationPolicy().GetTtl().AsDuration() {
		mask = append(mask, "expiration_policy")
	}
	if !equalLabels(got.GetLabels(), want.GetLabels()) {
		mask = append(mask, "labels")
	}
	if got.GetTopic() != want.GetTopic() {
		drift = append(drift, "topic")
	}
	if got.GetEnableMessageOrdering() != want.GetEnableMessageOrdering() {
		drift = append(drift, "enable_message_ordering")
	}
	if got.GetFilter() != want.GetFilter() {
		drift = append(drift, "filter")
	}
	return mask, drift
}

func equalLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// DeleteSubscription deletes a subscription; a missing one is not an error.
func DeleteSubscription(ctx context.Context, client *pubsub.Client, name string) error {
	err := client.SubscriptionAdminClient.DeleteSubscription(ctx, &pubsubpb.DeleteSubscriptionRequest{Subscription: name})
	if err != nil && status.Code(err) != codes.NotFound {
		return fmt.Errorf("delete subscription %s: %w", name, err)
	}
	return nil
}
