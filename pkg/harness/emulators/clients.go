package emulators

import (
	"context"
	"fmt"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// PubSub is a client of the pair's Pub/Sub emulator for project, built
// from the pair's address (not from PUBSUB_EMULATOR_HOST: a process may
// drive several pairs, and its own environment stays what it was given).
func (p *Pair) PubSub(ctx context.Context, project string) (*pubsub.Client, error) {
	c, err := pubsub.NewClient(ctx, project, option.WithEndpoint(p.PubSubHost), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		return nil, fmt.Errorf("pubsub client of %s: %w", p.PubSubHost, err)
	}
	return c, nil
}

// Firestore is a client of the pair's Firestore emulator for project, as
// PubSub. The emulator wants the "owner" bearer token that the client
// library sends itself when FIRESTORE_EMULATOR_HOST is set (it bypasses
// security rules).
func (p *Pair) Firestore(ctx context.Context, project string) (*firestore.Client, error) {
	c, err := firestore.NewClient(ctx, project, option.WithEndpoint(p.FirestoreHost), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithGRPCDialOption(grpc.WithPerRPCCredentials(ownerToken{})))
	if err != nil {
		return nil, fmt.Errorf("firestore client of %s: %w", p.FirestoreHost, err)
	}
	return c, nil
}

// ownerToken is the emulator's administrator credential.
type ownerToken struct{}

func (ownerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer owner"}, nil
}

func (ownerToken) RequireTransportSecurity() bool { return false }
