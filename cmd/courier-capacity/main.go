// Command courier-capacity prints Courier's capacity and cost model: pods,
// cores, memory and monthly cost at 10 thousand, 1 million and 10 million
// connected users from the per-core figures `make bench` measured and GCP's
// public prices and quotas, the fan-out's cost in edge pods and the options
// that keep it flat, and a replayed day. `make capacity` runs it;
// docs/capacity.md explains the output. It takes no settings: the inputs
// are the tables in internal/model, to be edited there.
package main

import (
	"bufio"
	"fmt"
	"os"

	"github.com/courierhq/courier/cmd/courier-capacity/internal/report"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "courier-capacity:", err)
		os.Exit(1)
	}
}

func run() (err error) {
	w := bufio.NewWriter(os.Stdout)
	defer func() {
		if ferr := w.Flush(); err == nil && ferr != nil {
			err = fmt.Errorf("write the report: %w", ferr)
		}
	}()
	if err := report.Write(w); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	return nil
}
