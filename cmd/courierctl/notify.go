package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/topology"
)

func init() {
	register("notify", "offline-notification events: tail [--count N] [--for D]", notifyCommand)
}

const notifyUsage = `usage: courierctl notify tail [--count N] [--for D]

  tail    prints each event the pipeline-worker publishes to NOTIFY_TOPIC
          (courier-notify; the worker needs NOTIFY_ENABLED=true), one JSON
          object a line, from now on, until Ctrl-C, --count events or --for.
          It reads a subscription of its own, created for the run and
          deleted after (it expires after a day if the command is killed);
          a push service consumes its own subscription the same way.

flags:`

func notifyCommand(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("notify", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), notifyUsage); fs.PrintDefaults() }
	if len(args) == 0 || args[0] != "tail" {
		fs.Usage()
		return errUsage
	}
	count := fs.Int("count", 0, "stop after this many events (0: no limit)")
	dur := fs.Duration("for", 0, "stop after this long (0: until Ctrl-C)")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
		return errUsage
	}
	env := config.FromOS()
	cfg := topology.FromEnv(env)
	if err := env.Err(); err != nil {
		return err
	}
	client, err := pubsubx.NewClient(ctx, cfg.Project)
	if err != nil {
		return err
	}
	defer client.Close()
	sub := cfg.SubscriptionPath(fmt.Sprintf("courier-notify-tail-%d", time.Now().UnixNano()))
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: sub, Topic: cfg.TopicPath(cfg.NotifyTopic), AckDeadlineSeconds: 10,
		ExpirationPolicy:         &pubsubpb.ExpirationPolicy{Ttl: durationpb.New(24 * time.Hour)},
		MessageRetentionDuration: durationpb.New(10 * time.Minute),
	}); err != nil {
		return fmt.Errorf("create tail subscription on %s: %w", cfg.NotifyTopic, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.SubscriptionAdminClient.DeleteSubscription(dctx, &pubsubpb.DeleteSubscriptionRequest{Subscription: sub})
	}()
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var mu sync.Mutex
	seen := 0
	err = client.Subscriber(sub).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		if *count > 0 && seen >= *count {
			return
		}
		seen++
		fmt.Fprintf(out, "%s\n", m.Data)
		if *count > 0 && seen >= *count {
			stop()
		}
	})
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("tail %s: %w", cfg.NotifyTopic, err)
	}
	return nil
}
