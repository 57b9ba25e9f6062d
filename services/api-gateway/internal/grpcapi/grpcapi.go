// Package grpcapi is the gateway's gRPC face: courier.v1.Messages over the
// same messages core as REST, with the same auth (metadata
// "authorization: Bearer <JWT>"), the same per-user rate limit, and the
// core's error codes mapped to gRPC status codes (with an ErrorInfo detail
// carrying the machine code).
package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/inbox"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"

	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
	"github.com/courierhq/courier/services/api-gateway/internal/authn"
	"github.com/courierhq/courier/services/api-gateway/internal/messages"
	"github.com/courierhq/courier/services/api-gateway/internal/presence"
	"github.com/courierhq/courier/services/api-gateway/internal/transport"
)

// Config is everything the gRPC server needs.
type Config struct {
	transport.Config
	// MaxRecvBytes caps a request message (MAX_BODY_BYTES, like REST's
	// body); zero, in tests only, is 256 KiB rather than grpc's 4 MiB.
	MaxRecvBytes int
	// Presence, when set, serves GetPresence (else Unimplemented).
	Presence presence.Source
}

// ErrorDomain is the ErrorInfo domain of Courier's errors.
const ErrorDomain = "courier.v1"

// NewServer returns a gRPC server with courier.v1.Messages and the standard
// health service registered. The health service needs no token.
func NewServer(cfg Config) (*grpc.Server, *health.Server) {
	cfg.Config = cfg.Config.Safe()
	if cfg.MaxRecvBytes <= 0 {
		cfg.MaxRecvBytes = 256 << 10
	}
	i := &interceptors{cfg: cfg}
	srv := grpc.NewServer(
		// Callers are outside Courier: a new root span sampled by Courier's
		// policy, linked to the caller's; baggage is not extracted.
		grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithPublicEndpoint(),
			otelgrpc.WithPropagators(propagation.TraceContext{}))),
		grpc.MaxRecvMsgSize(cfg.MaxRecvBytes),
		// An idle connection is closed after a while and a client may not
		// ping more often than every 10 s (a ping flood costs the server);
		// the handshake of a new connection has its own bound.
		grpc.ConnectionTimeout(10*time.Second),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 5 * time.Minute, Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(i.observe, i.recover, i.timeout, i.authenticate, i.rateLimit),
	)
	courierv1.RegisterMessagesServer(srv, &Handler{svc: cfg.Service, presence: cfg.Presence})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	return srv, hs
}

// Handler adapts the core to courier.v1.MessagesServer. It expects the
// interceptors to have put the caller in the context.
type Handler struct {
	courierv1.UnimplementedMessagesServer
	svc      *messages.Service
	presence presence.Source
}

func user(ctx context.Context) string {
	p, _ := authn.PrincipalFrom(ctx)
	return p.UserID
}

// Send implements courier.v1.Messages/Send.
func (h *Handler) Send(ctx context.Context, req *courierv1.SendRequest) (*courierv1.SendResponse, error) {
	acc, err := h.svc.Send(ctx, user(ctx), messages.SendRequest{
		To: req.GetTo(), Payload: req.GetPayloadJson(), ContentType: req.GetContentType(),
		IdempotencyKey: req.GetIdempotencyKey(), ConversationID: req.GetConversationId(),
	})
	if err != nil {
		return nil, err
	}
	return &courierv1.SendResponse{Id: acc.ID, AcceptedAt: timestamppb.New(acc.AcceptedAt)}, nil
}

// ListInbox implements courier.v1.Messages/ListInbox.
func (h *Handler) ListInbox(ctx context.Context, req *courierv1.ListInboxRequest) (*courierv1.ListInboxResponse, error) {
	page, err := h.svc.ListInbox(ctx, user(ctx), req.GetCursor(), int(req.GetLimit()))
	if err != nil {
		return nil, err
	}
	resp := &courierv1.ListInboxResponse{NextCursor: page.NextCursor}
	for _, e := range page.Entries {
		resp.Messages = append(resp.Messages, &courierv1.InboxEntry{Message: inbox.Shown(e.Message), Cursor: e.Cursor()})
	}
	return resp, nil
}

// GetMessage implements courier.v1.Messages/GetMessage.
func (h *Handler) GetMessage(ctx context.Context, req *courierv1.GetMessageRequest) (*courierv1.GetMessageResponse, error) {
	v, err := h.svc.Get(ctx, user(ctx), req.GetId())
	if err != nil {
		return nil, err
	}
	return &courierv1.GetMessageResponse{Message: v.Message, State: v.State, DeliveredCount: int32(v.DeliveredCount), ReadCount: int32(v.ReadCount)}, nil
}

// ListConversations implements courier.v1.Messages/ListConversations.
func (h *Handler) ListConversations(ctx context.Context, req *courierv1.ListConversationsRequest) (*courierv1.ListConversationsResponse, error) {
	p, err := h.svc.ListConversations(ctx, user(ctx), req.GetCursor(), int(req.GetLimit()))
	if err != nil {
		return nil, err
	}
	resp := &courierv1.ListConversationsResponse{NextCursor: p.Next}
	for _, c := range p.Conversations {
		cv := &courierv1.Conversation{Id: c.ID, UnreadCount: int32(c.UnreadCount), UpdatedAt: timestamppb.New(c.UpdatedAt)}
		if c.ReadSeq > 0 {
			cv.ReadCursor = inbox.EncodeCursor(c.ReadSeq)
		}
		if c.Last != nil {
			cv.LastMessage = &courierv1.InboxEntry{Message: inbox.Shown(c.Last.Message), Cursor: c.Last.Cursor()}
			cv.LastCursor = c.Last.Cursor()
		}
		resp.Conversations = append(resp.Conversations, cv)
	}
	return resp, nil
}

// ListConversationMessages implements courier.v1.Messages/ListConversationMessages.
func (h *Handler) ListConversationMessages(ctx context.Context, req *courierv1.ListConversationMessagesRequest) (*courierv1.ListConversationMessagesResponse, error) {
	p, err := h.svc.ListConversation(ctx, user(ctx), req.GetConversationId(), req.GetBefore(), req.GetAfter(), int(req.GetLimit()))
	if err != nil {
		return nil, err
	}
	resp := &courierv1.ListConversationMessagesResponse{HasMore: p.More}
	for _, e := range p.Entries {
		resp.Messages = append(resp.Messages, &courierv1.InboxEntry{Message: inbox.Shown(e.Message), Cursor: e.Cursor()})
	}
	if n := len(p.Entries); n > 0 {
		resp.PrevCursor, resp.NextCursor = p.Entries[0].Cursor(), p.Entries[n-1].Cursor()
	}
	return resp, nil
}

// MarkRead implements courier.v1.Messages/MarkRead.
func (h *Handler) MarkRead(ctx context.Context, req *courierv1.MarkReadRequest) (*courierv1.MarkReadResponse, error) {
	st, err := h.svc.MarkRead(ctx, user(ctx), req.GetConversationId(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	resp := &courierv1.MarkReadResponse{ConversationId: req.GetConversationId(), UnreadCount: int32(st.Unread)}
	if st.ReadSeq > 0 {
		resp.ReadCursor = inbox.EncodeCursor(st.ReadSeq)
	}
	return resp, nil
}

// AckMessage implements courier.v1.Messages/AckMessage.
func (h *Handler) AckMessage(ctx context.Context, req *courierv1.AckMessageRequest) (*courierv1.AckMessageResponse, error) {
	if err := h.svc.Ack(ctx, user(ctx), req.GetId()); err != nil {
		return nil, err
	}
	return &courierv1.AckMessageResponse{}, nil
}

// GetPresence implements courier.v1.Messages/GetPresence (package
// presence has the rules, shared with GET /v1/presence).
func (h *Handler) GetPresence(ctx context.Context, req *courierv1.GetPresenceRequest) (*courierv1.GetPresenceResponse, error) {
	if h.presence == nil {
		return nil, status.Error(codes.Unimplemented, "presence is not served here")
	}
	items, err := presence.Lookup(ctx, h.presence, user(ctx), req.GetUsers())
	if err != nil {
		return nil, err
	}
	resp := &courierv1.GetPresenceResponse{}
	for _, it := range items {
		p := &courierv1.UserPresence{User: it.User, Online: it.Online}
		if it.LastSeen != nil {
			p.LastSeen = timestamppb.New(*it.LastSeen)
		}
		resp.Presence = append(resp.Presence, p)
	}
	return resp, nil
}

type interceptors struct{ cfg Config }

func public(method string) bool { return strings.HasPrefix(method, "/grpc.health.v1.Health/") }

// observe converts errors to gRPC statuses, counts and times the call and
// logs it (with trace ids: the otelgrpc span is already in ctx).
func (i *interceptors) observe(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := next(ctx, req)
	var ae *apierr.Error
	if err != nil {
		_, isStatus := status.FromError(err)
		if errors.As(err, &ae) || !isStatus {
			ae = apierr.From(err)
			err = ToStatus(ae)
		}
	}
	code := status.Code(err)
	dur := time.Since(start)
	if i.cfg.Metrics != nil {
		i.cfg.Metrics.GRPCRequests.WithLabelValues(info.FullMethod, code.String()).Inc()
		i.cfg.Metrics.GRPCDuration.WithLabelValues(info.FullMethod).Observe(dur.Seconds())
	}
	level := slog.LevelInfo
	switch {
	case public(info.FullMethod):
		level = slog.LevelDebug
	case code == codes.Internal || code == codes.Unknown || code == codes.Unavailable:
		level = slog.LevelError
	}
	attrs := []slog.Attr{
		slog.String("method", info.FullMethod),
		slog.String("grpc_code", code.String()),
		slog.Float64("duration_ms", float64(dur.Microseconds())/1000),
	}
	if u := user(ctx); u != "" {
		attrs = append(attrs, slog.String("user", u))
	}
	if ae != nil {
		attrs = append(attrs, slog.String("code", string(ae.Code)))
		if ae.Err != nil {
			attrs = append(attrs, slog.String("err", ae.Err.Error()))
		}
	}
	i.cfg.Logger.LogAttrs(ctx, level, "grpc request", attrs...)
	return resp, err
}

// ToStatus renders e as a gRPC status with an ErrorInfo (reason = the
// machine code) and, when rate limited, a RetryInfo.
func ToStatus(e *apierr.Error) error {
	st := status.New(apierr.GRPCCode(e.Code), e.Detail)
	info := &errdetails.ErrorInfo{Reason: string(e.Code), Domain: ErrorDomain}
	var err error
	if e.Code == apierr.RateLimited || e.Code == apierr.RecipientRateLimited {
		st, err = st.WithDetails(info, &errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)})
	} else {
		st, err = st.WithDetails(info)
	}
	if err != nil { // only for unmarshalable details, which these are not
		return status.Error(apierr.GRPCCode(e.Code), e.Detail)
	}
	return st.Err()
}

func (i *interceptors) recover(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			i.cfg.Logger.ErrorContext(ctx, "panic in grpc handler", "method", info.FullMethod,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = apierr.Wrap(apierr.Internal, fmt.Errorf("panic: %v", r), "internal error")
		}
	}()
	return next(ctx, req)
}

func (i *interceptors) timeout(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, i.cfg.RequestTimeout)
	defer cancel()
	return next(ctx, req)
}

func (i *interceptors) authenticate(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if public(info.FullMethod) {
		return next(ctx, req)
	}
	var header string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if vs := md.Get("authorization"); len(vs) == 1 {
			header = vs[0]
		} else if len(vs) > 1 {
			return nil, &apierr.Error{Code: apierr.Unauthenticated, InvalidToken: true, Detail: "give one authorization value"}
		}
	}
	p, err := authn.Authenticate(i.cfg.Verifier, header)
	if err != nil {
		return nil, err
	}
	return next(authn.WithPrincipal(ctx, p), req)
}

func (i *interceptors) rateLimit(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if public(info.FullMethod) || i.cfg.Limiter == nil {
		return next(ctx, req)
	}
	if ok, retry := i.cfg.Limiter.Allow(user(ctx)); !ok {
		if i.cfg.Metrics != nil {
			i.cfg.Metrics.RateLimited.WithLabelValues("grpc").Inc()
		}
		return nil, &apierr.Error{Code: apierr.RateLimited, RetryAfter: retry,
			Detail: fmt.Sprintf("too many requests; retry in %s", retry.Round(time.Millisecond))}
	}
	return next(ctx, req)
}
