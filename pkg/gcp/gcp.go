// Package gcp connects a service to Google Cloud: one Pub/Sub and one
// Firestore client for its project, talking to the emulators when
// PUBSUB_EMULATOR_HOST / FIRESTORE_EMULATOR_HOST are set (the client
// libraries honour them).
package gcp

import (
	"context"
	"errors"
	"fmt"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"

	"github.com/courierhq/courier/pkg/pubsubx"
)

// Clients are a service's connections to Google Cloud.
type Clients struct {
	PubSub    *pubsub.Client
	Firestore *firestore.Client
}

// Connect opens both clients for project.
func Connect(ctx context.Context, project string) (*Clients, error) {
	ps, err := pubsubx.NewClient(ctx, project)
	if err != nil {
		return nil, err
	}
	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		ps.Close()
		return nil, fmt.Errorf("firestore client for project %s: %w", project, err)
	}
	return &Clients{PubSub: ps, Firestore: fs}, nil
}

// Close closes both clients.
func (c *Clients) Close() error {
	return errors.Join(c.PubSub.Close(), c.Firestore.Close())
}
