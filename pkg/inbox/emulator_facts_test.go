package inbox_test

// Facts about the Firestore emulator that the batched commit relies on or
// works around (docs/emulators.md). If an emulator upgrade changes one, this
// fails and names what to revisit.

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	vkit "cloud.google.com/go/firestore/apiv1"
	pb "cloud.google.com/go/firestore/apiv1/firestorepb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/courierhq/courier/pkg/testenv"
)

// One commit may hold far more than 500 writes (a message to 1,000
// recipients is 1,001 creates), but no gRPC request over 4 MiB: the
// emulator answers RESOURCE_EXHAUSTED, which the Go client's Commit retries
// until its deadline, so WORKER_BATCH_MAX_BYTES stays below 4 MiB. The same
// document created twice in one commit is INVALID_ARGUMENT, so the
// committer stores a repeated id once.
func TestEmulatorCommitLimits(t *testing.T) {
	project := testenv.Project(t)
	testenv.Firestore(t, project) // skip or fail like every emulator test
	ctx := testenv.Context(t, time.Minute)
	c, err := vkit.NewClient(ctx, option.WithEndpoint(os.Getenv("FIRESTORE_EMULATOR_HOST")), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithGRPCDialOption(grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	db := "projects/" + project + "/databases/(default)"
	create := func(path string, payload []byte) *pb.Write {
		return &pb.Write{Operation: &pb.Write_Update{Update: &pb.Document{
			Name:   db + "/documents/" + path,
			Fields: map[string]*pb.Value{"payload": {ValueType: &pb.Value_BytesValue{BytesValue: payload}}},
		}}, CurrentDocument: &pb.Precondition{ConditionType: &pb.Precondition_Exists{Exists: false}}}
	}
	commit := func(ws []*pb.Write) error {
		_, err := c.Commit(ctx, &pb.CommitRequest{Database: db, Writes: ws}, gax.WithRetry(func() gax.Retryer { return nil }))
		return err
	}

	var wide []*pb.Write
	for i := range 1001 {
		wide = append(wide, create(fmt.Sprintf("users/u%04d/inbox/%020d", i, 1), []byte(`{"n":1}`)))
	}
	if err := commit(wide); err != nil {
		t.Fatalf("a commit of 1,001 creates: %v (revisit WORKER_MAX_RECIPIENTS and WORKER_BATCH_MAX_WRITES)", err)
	}

	big := []byte(strings.Repeat("x", 900<<10))
	var over []*pb.Write
	for i := range 5 { // 4.4 MiB
		over = append(over, create(fmt.Sprintf("big/%d", i), big))
	}
	if err := commit(over); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a 4.4 MiB commit: %v, want RESOURCE_EXHAUSTED (revisit WORKER_BATCH_MAX_BYTES' default)", err)
	}
	if err := commit(over[:4]); err != nil {
		t.Fatalf("a 3.5 MiB commit: %v", err)
	}

	twice := []*pb.Write{create("twice/d", []byte("1")), create("twice/d", []byte("2"))}
	if err := commit(twice); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("one document created twice in a commit: %v, want INVALID_ARGUMENT", err)
	}
	if err := commit([]*pb.Write{create("big/0", []byte("again")), create("fresh/0", nil)}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("creating an existing document: %v, want ALREADY_EXISTS", err)
	}
}
