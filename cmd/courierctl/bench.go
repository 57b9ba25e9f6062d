package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/courierhq/courier/cmd/courierctl/internal/loadgen"
	"github.com/courierhq/courier/pkg/auth"
)

func init() {
	register("bench", "load generator: post messages at a rate, receive them on WebSockets, report latency and loss", bench)
}

func bench(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	gateway := fs.String("gateway", "http://127.0.0.1:8080", "gateway base URL")
	edges := fs.String("edges", "127.0.0.1:8081,127.0.0.1:8082", "comma-separated ws-edge host:port list")
	users := fs.Int("users", 20, "users, one WebSocket session each, spread over the edges")
	rate := fs.Float64("rate", 50, "messages per second")
	duration := fs.Duration("duration", 10*time.Second, "how long to send")
	payload := fs.Int("payload", 200, "payload size in bytes")
	drain := fs.Duration("drain", 15*time.Second, "how long to wait for deliveries after the last send")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	secret := os.Getenv("AUTH_HS256_SECRET")
	if secret == "" {
		return fmt.Errorf("AUTH_HS256_SECRET: required to mint the users' tokens")
	}
	res, err := loadgen.Run(ctx, loadgen.Config{
		GatewayURL: strings.TrimRight(*gateway, "/"), Edges: strings.Split(*edges, ","), Users: *users,
		Rate: *rate, Duration: *duration, Payload: *payload, Drain: *drain,
		Token: func(u string) (string, error) { return auth.Mint([]byte(secret), u, time.Hour) },
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(out).Encode(res)
	}
	fmt.Fprint(out, res)
	if res.Lost > 0 {
		return fmt.Errorf("%d accepted messages were not delivered within %s", res.Lost, *drain)
	}
	return nil
}
