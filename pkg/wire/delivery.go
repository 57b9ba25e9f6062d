package wire

import (
	"errors"
	"fmt"
	"strings"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/protobuf/proto"

	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// The delivery: once a message is stored, the pipeline-worker publishes one
// to the deliveries topic, with every recipient's inbox position; every
// ws-edge pod receives it (or, with targeted routing, the pods holding its
// recipients) and writes it to the local sessions of its recipients.
//
// No ordering key. An edge orders each user's deliveries by inbox position
// (ws-edge internal/sequencer), which is the order that matters, per recipient;
// a per-sender ordering key would only serialize the worker's publishes and
// pause all of a sender's later deliveries after one failed publish, and
// edge subscriptions are not ordered anyway.

// SchemaDelivery is the courier_schema attribute of a delivery.
var SchemaDelivery = string((&courierv1.Delivery{}).ProtoReflect().Descriptor().FullName())

// AttrRecipients lists a delivery's recipients, comma-separated, so an edge
// can skip decoding a delivery for users it does not hold. Left out when
// longer than MaxAttrValue (Pub/Sub refuses longer values): the edge then
// decodes.
const AttrRecipients = "courier_recipients"

// EncodeDelivery builds the deliveries-topic message of d.
func EncodeDelivery(d *courierv1.Delivery) (*pubsub.Message, error) {
	data, err := proto.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode delivery %s: %w", d.GetMessage().GetId(), err)
	}
	attrs := map[string]string{
		AttrMessageID:   d.GetMessage().GetId(),
		AttrSender:      d.GetMessage().GetFrom(),
		AttrSchema:      SchemaDelivery,
		AttrContentType: ContentTypeProtobuf,
	}
	users := make([]string, len(d.GetRecipients()))
	listable := true
	for i, r := range d.GetRecipients() {
		users[i] = r.GetUserId()
		// A list an edge would split wrongly (an id that is empty or holds
		// a comma, which valid user ids never are) is left out: the edge
		// then decodes rather than dropping a delivery it must write.
		listable = listable && users[i] != "" && !strings.Contains(users[i], ",")
	}
	if rc := strings.Join(users, ","); listable && len(rc) <= MaxAttrValue {
		attrs[AttrRecipients] = rc
	}
	return &pubsub.Message{Data: data, Attributes: attrs}, nil
}

// DecodeDelivery reads a delivery. A delivery without a message id cannot
// be written to anyone.
func DecodeDelivery(data []byte) (*courierv1.Delivery, error) {
	d := &courierv1.Delivery{}
	if err := proto.Unmarshal(data, d); err != nil {
		return nil, fmt.Errorf("decode delivery: %w", err)
	}
	if d.GetMessage().GetId() == "" {
		return nil, errors.New("delivery without a message id")
	}
	return d, nil
}

// MayConcern reports whether a delivery with attrs may be for one of the
// users has accepts: false only when its recipient list is attached and
// names none of them. An edge checks this before decoding anything.
func MayConcern(attrs map[string]string, has func(user string) bool) bool {
	list, ok := attrs[AttrRecipients]
	if !ok {
		return true
	}
	for list != "" {
		var u string
		u, list, _ = strings.Cut(list, ",")
		if has(u) {
			return true
		}
	}
	return false
}
