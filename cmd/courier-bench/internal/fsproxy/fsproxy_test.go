package fsproxy

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The proxy in front of the real emulator, driven by the real client: data
// goes through both ways, errors keep their codes, and each RPC is counted
// once by method.
func TestProxyForwardsAndCounts(t *testing.T) {
	upstream := os.Getenv("FIRESTORE_EMULATOR_HOST")
	if upstream == "" {
		if os.Getenv("COURIER_REQUIRE_EMULATORS") != "" {
			t.Fatal("FIRESTORE_EMULATOR_HOST is not set but COURIER_REQUIRE_EMULATORS is")
		}
		t.Skip("FIRESTORE_EMULATOR_HOST not set: start the emulators (scripts/emulators.sh)")
	}
	p, err := Start(upstream)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	project := fmt.Sprintf("fsproxy-%d", time.Now().UnixNano())

	t.Setenv("FIRESTORE_EMULATOR_HOST", p.Addr())
	viaProxy, err := firestore.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()
	doc := viaProxy.Collection("c").Doc("d")
	if _, err := doc.Create(ctx, map[string]any{"n": 1}); err != nil {
		t.Fatalf("create through the proxy: %v", err)
	}
	if _, err := doc.Create(ctx, map[string]any{"n": 2}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second create: %v, want AlreadyExists passed through", err)
	}
	snap, err := doc.Get(ctx)
	if err != nil || snap.Data()["n"] != int64(1) {
		t.Fatalf("get through the proxy: %v %v", snap, err)
	}
	docs, err := viaProxy.Collection("c").Where("n", "==", 1).Documents(ctx).GetAll()
	if err != nil || len(docs) != 1 {
		t.Fatalf("query through the proxy: %d docs, %v", len(docs), err)
	}

	t.Setenv("FIRESTORE_EMULATOR_HOST", upstream)
	direct, err := firestore.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if snap, err := direct.Collection("c").Doc("d").Get(ctx); err != nil || snap.Data()["n"] != int64(1) {
		t.Fatalf("the write did not reach the emulator: %v %v", snap, err)
	}

	got := p.Counts()
	want := map[string]int64{
		"/google.firestore.v1.Firestore/Commit":            2,
		"/google.firestore.v1.Firestore/BatchGetDocuments": 1,
		"/google.firestore.v1.Firestore/RunQuery":          1,
	}
	for m, n := range want {
		if got[m] != n {
			t.Errorf("%s counted %d times, want %d (all: %v)", m, got[m], n, got)
		}
	}
	if Total(got) != 4 {
		t.Errorf("total %d RPCs, want 4: %v", Total(got), got)
	}
	p.Reset()
	if Total(p.Counts()) != 0 {
		t.Error("Reset left counts behind")
	}
}
