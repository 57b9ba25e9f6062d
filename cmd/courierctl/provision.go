package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/topology"
)

func init() {
	register("provision", "create or update the Pub/Sub topics and subscriptions (idempotent)", provision)
}

func provision(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	check := fs.Bool("check", false, "exit non-zero when anything would change (drift detection); changes nothing")
	if err := fs.Parse(args); err != nil {
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
	if *check {
		rep, err := topology.Plan(ctx, client, cfg)
		if err != nil {
			return err
		}
		for _, a := range rep {
			fmt.Fprintln(out, a)
		}
		if rep.Changed() {
			return fmt.Errorf("topology of project %s differs from the declaration", cfg.Project)
		}
		return nil
	}
	rep, err := topology.Apply(ctx, client, cfg)
	for _, a := range rep {
		fmt.Fprintln(out, a)
	}
	if err != nil {
		return fmt.Errorf("provision project %s: %w", cfg.Project, err)
	}
	return nil
}
