package dlq

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/courierhq/courier/pkg/clip"
)

// WriteList writes letters as a table, one per line.
func WriteList(w io.Writer, letters []*DeadLetter) error {
	if len(letters) == 0 {
		_, err := fmt.Fprintln(w, "no dead letters")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCOURIER ID\tREASON\tATTEMPTS\tDEAD-LETTERED\tSENDER\tERROR")
	for _, d := range letters {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, dash(d.MessageID), d.Reason, d.Attempts,
			d.DeadAt.UTC().Format(time.RFC3339), dash(d.sender()), clip.Text(oneLine(d.Error), 60))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d dead letter(s)\n", len(letters))
	return err
}

// WriteShow writes one letter in full.
func WriteShow(w io.Writer, d *DeadLetter) error {
	var b strings.Builder
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "  %-20s %s\n", k+":", v)
		}
	}
	fmt.Fprintf(&b, "Dead letter %s\n", d.ID)
	row("courier message id", d.MessageID)
	row("reason", d.Reason)
	row("error", d.Error)
	row("attempts", fmt.Sprint(d.Attempts))
	row("source subscription", d.Source)
	if d.FirstFailure != nil {
		row("first failure", d.FirstFailure.UTC().Format(time.RFC3339Nano))
	}
	row("dead-lettered at", d.DeadAt.UTC().Format(time.RFC3339Nano))
	row("ordering key", d.OrderingKey)
	b.WriteString("  original attributes:\n")
	keys := make([]string, 0, len(d.Attributes))
	for k := range d.Attributes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "    %s = %s\n", k, d.Attributes[k])
	}
	if e := d.Envelope; e != nil {
		b.WriteString("  envelope:\n")
		fmt.Fprintf(&b, "    id:          %s\n    sender:      %s\n    recipients:  %s\n", e.MessageID, e.Sender, strings.Join(e.Recipients, ", "))
		if e.SentAt != nil {
			fmt.Fprintf(&b, "    sent at:     %s\n", e.SentAt.Format(time.RFC3339Nano))
		}
		if e.ContentType != "" {
			fmt.Fprintf(&b, "    content:     %s\n", e.ContentType)
		}
		if e.IdempotencyKey != "" {
			fmt.Fprintf(&b, "    idem. key:   %s\n", e.IdempotencyKey)
		}
		if e.Payload != nil {
			var pretty bytes.Buffer
			if json.Indent(&pretty, e.Payload, "      ", "  ") == nil {
				fmt.Fprintf(&b, "    payload:\n      %s\n", pretty.String())
			}
		} else {
			fmt.Fprintf(&b, "    payload (not JSON): %q\n", clip.Text(e.PayloadText, 2000))
		}
	} else {
		fmt.Fprintf(&b, "  payload does not decode as an envelope: %s\n", d.DecodeError)
		fmt.Fprintf(&b, "  data (%d bytes): %s\n", len(d.Data), printable(d.Data, 512))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteReplay writes one line per replayed letter and returns an error when
// any failed.
func WriteReplay(w io.Writer, results []ReplayResult) error {
	failed := 0
	for _, r := range results {
		if r.Err != nil {
			failed++
			fmt.Fprintf(w, "FAILED    %s (%s): %v\n", r.ID, dash(r.MessageID), r.Err)
			continue
		}
		fmt.Fprintf(w, "replayed  %s (%s) as ingress message %s\n", r.ID, dash(r.MessageID), r.NewID)
	}
	fmt.Fprintf(w, "%d replayed, %d failed\n", len(results)-failed, failed)
	if failed > 0 {
		return fmt.Errorf("%d of %d replays failed; those letters stay on the dead-letter subscription", failed, len(results))
	}
	return nil
}

// WriteJSON writes v as indented JSON.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (d *DeadLetter) sender() string {
	if d.Envelope != nil {
		return d.Envelope.Sender
	}
	return d.Attributes["courier_sender"]
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// printable shows data as text when it is, else as hex, at most n bytes.
func printable(data []byte, n int) string {
	more := ""
	if len(data) > n {
		data, more = data[:n], "…"
	}
	if utf8.Valid(data) && !bytes.ContainsFunc(data, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' }) {
		return fmt.Sprintf("%q%s", data, more)
	}
	return fmt.Sprintf("hex %x%s", data, more)
}
