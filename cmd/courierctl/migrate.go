package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"cloud.google.com/go/firestore"

	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/topology"
)

func init() {
	register("migrate-acks", "move acks kept in messages/{id}.delivered to messages/{id}/deliveries (once; idempotent)", migrateAcksCmd)
}

// migrateAcksCmd runs inbox.Store.MigrateLegacyAcks: the services read
// acks only from messages/{id}/deliveries, so acks kept the old way count
// again once this has run (docs/firestore.md: Migrating old acks).
func migrateAcksCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("migrate-acks", flag.ContinueOnError)
	verbose := fs.Bool("v", false, "print each migrated message")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return errUsage
	}
	env := config.FromOS()
	cfg := topology.FromEnv(env)
	if err := env.Err(); err != nil {
		return err
	}
	fsc, err := firestore.NewClient(ctx, cfg.Project)
	if err != nil {
		return fmt.Errorf("firestore client for project %s: %w", cfg.Project, err)
	}
	defer fsc.Close()
	var progress func(string, int, int)
	if *verbose {
		progress = func(id string, written, kept int) {
			fmt.Fprintf(out, "%s: %d acks moved, %d already there\n", id, written, kept)
		}
	}
	m, err := inbox.New(fsc).MigrateLegacyAcks(ctx, progress)
	fmt.Fprintf(out, "%d messages migrated: %d deliveries documents written, %d acks already there\n", m.Messages, m.Written, m.Kept)
	if err != nil {
		return fmt.Errorf("migrate acks in project %s (run again to finish): %w", cfg.Project, err)
	}
	return nil
}
