package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/courierhq/courier/cmd/courierctl/internal/dlq"
	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/telemetry"
	"github.com/courierhq/courier/pkg/topology"
)

func init() {
	register("dlq", "dead letters: list | show ID | replay [--all | ID...] | purge", dlqCommand)
}

const dlqUsage = `usage: courierctl dlq <list|show|replay|purge> [flags] [IDs]

  list    [--json] [--limit N]      the dead letters, oldest first (they stay)
  show    [--json] ID               one dead letter in full (it stays); ID is its
                                    Pub/Sub message id or the Courier message id
  replay  [--all | ID...]           republish to the ingress topic with the original
                                    attributes, in a new trace linked to the original;
                                    each letter is acked only once its republish is confirmed
  purge                             ack (drop) every dead letter

flags (before the IDs):`

func dlqCommand(ctx context.Context, args []string, out io.Writer) (err error) {
	fs := flag.NewFlagSet("dlq", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), dlqUsage); fs.PrintDefaults() }
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fs.Usage()
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	sub := args[0]
	jsonOut := fs.Bool("json", false, "JSON output (list, show, replay)")
	limit := fs.Int("limit", 1000, "pull at most this many dead letters")
	wait := fs.Duration("wait", time.Second, "how long the last pull waits for more letters")
	all := fs.Bool("all", false, "replay every dead letter")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	ids := fs.Args()
	switch {
	case sub == "show" && len(ids) != 1,
		sub == "replay" && (*all == (len(ids) > 0)),
		(sub == "list" || sub == "purge") && len(ids) > 0:
		fs.Usage()
		return errUsage
	case sub != "list" && sub != "show" && sub != "replay" && sub != "purge":
		fmt.Fprintf(fs.Output(), "courierctl dlq: unknown subcommand %q\n\n", sub)
		fs.Usage()
		return errUsage
	}

	env := config.FromOS()
	cfg := topology.FromEnv(env)
	if err := env.Err(); err != nil {
		return err
	}
	if sub == "replay" {
		// Export the replay spans when OTEL_EXPORTER_OTLP_ENDPOINT is set;
		// either way the republished messages carry the new trace context.
		shutdown, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "courierctl"})
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err = errors.Join(err, shutdown(sctx))
		}()
	}
	client, err := pubsubx.NewClient(ctx, cfg.Project)
	if err != nil {
		return err
	}
	defer client.Close()
	insp := dlq.New(client, cfg, dlq.Options{Limit: *limit, Wait: *wait})
	defer insp.Close()

	switch sub {
	case "list":
		letters, err := insp.List(ctx)
		if err != nil {
			return err
		}
		if *jsonOut {
			if letters == nil {
				letters = []*dlq.DeadLetter{}
			}
			return dlq.WriteJSON(out, letters)
		}
		return dlq.WriteList(out, letters)
	case "show":
		d, err := insp.Show(ctx, ids[0])
		if err != nil {
			return err
		}
		if *jsonOut {
			return dlq.WriteJSON(out, d)
		}
		return dlq.WriteShow(out, d)
	case "replay":
		results, err := insp.Replay(ctx, ids, *all)
		if err != nil {
			return err
		}
		if *jsonOut {
			if err := dlq.WriteJSON(out, results); err != nil {
				return err
			}
			return dlq.WriteReplay(io.Discard, results)
		}
		return dlq.WriteReplay(out, results)
	default: // purge
		n, err := insp.Purge(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "purged %d dead letter(s) from %s\n", n, cfg.DeadLetterSubscription)
		return nil
	}
}
