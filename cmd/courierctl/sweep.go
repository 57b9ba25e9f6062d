package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/courierhq/courier/cmd/courierctl/internal/sweep"
	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/edges"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/topology"
)

func init() {
	register("sweep", "delete the subscriptions of ws-edge pods that are gone (stale heartbeat)", sweepCmd)
}

func sweepCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("sweep", flag.ContinueOnError)
	stale := fs.Duration("stale", 5*time.Minute, "heartbeat age after which an edge pod is gone (keep it several EDGE_HEARTBEAT_INTERVALs)")
	keep := fs.String("keep", "", "comma-separated pod names known alive (e.g. from kubectl); kept whatever their heartbeat")
	dryRun := fs.Bool("dry-run", false, "report what would be deleted; delete nothing")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return errUsage
	}
	if *stale <= 0 {
		return fmt.Errorf("--stale must be positive")
	}
	env := config.FromOS()
	cfg := topology.FromEnv(env)
	keepList := config.FromMap(map[string]string{"KEEP": *keep}).List("KEEP", nil)
	if err := env.Err(); err != nil {
		return err
	}
	client, err := pubsubx.NewClient(ctx, cfg.Project)
	if err != nil {
		return err
	}
	defer client.Close()
	fsc, err := firestore.NewClient(ctx, cfg.Project)
	if err != nil {
		return fmt.Errorf("firestore client for project %s: %w", cfg.Project, err)
	}
	defer fsc.Close()
	decisions, err := sweep.Run(ctx, client, edges.New(fsc), cfg, sweep.Options{Stale: *stale, Keep: keepList, DryRun: *dryRun})
	for _, d := range decisions {
		fmt.Fprintln(out, d)
	}
	if len(decisions) == 0 {
		fmt.Fprintln(out, "no edge subscriptions")
	}
	if err != nil {
		return fmt.Errorf("sweep project %s: %w", cfg.Project, err)
	}
	return nil
}
