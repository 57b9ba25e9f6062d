package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/courierhq/courier/pkg/auth"
)

func init() {
	register("token", "mint a development HS256 token for a user (needs AUTH_HS256_SECRET)", token)
}

func token(_ context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	ttl := fs.Duration("ttl", time.Hour, "validity")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: courierctl token [-ttl 1h] USER_ID")
		return errUsage
	}
	secret := os.Getenv("AUTH_HS256_SECRET")
	if secret == "" {
		return fmt.Errorf("AUTH_HS256_SECRET: required to mint a development token")
	}
	if err := auth.ValidateUserID(fs.Arg(0)); err != nil {
		return err
	}
	tok, err := auth.Mint([]byte(secret), fs.Arg(0), *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, tok)
	return nil
}
