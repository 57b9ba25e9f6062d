package model

// Price is one public list price or limit, with the page it is published on.
// Update the value and PricesAsOf together when the page changes.
type Price struct {
	Value float64
	Unit  string
	Page  string
}

// PricesAsOf is when the prices below were copied. Pub/Sub's throughput
// price, its 1,000-byte minimum and the billing of filtered messages were
// checked against the text of the pages named; on 2026-12-08 Firestore's
// regional US write and read prices ($0.09 and $0.03 per 100,000), GKE's
// cluster fee and Autopilot's general-purpose vCPU and GiB prices were
// checked against stored copies of their pages and of two third-party
// guides that quote them. The Compute Engine and network figures are the
// published us-central1 list prices as recorded here, not re-checked:
// check each page before relying on a total.
const PricesAsOf = "2026-12-07"

// HoursPerMonth is the month the prices are quoted for (730 h, Google's).
const HoursPerMonth = 730

// Prices are on-demand list prices in USD, us-central1 (a "large region"
// for Pub/Sub quotas). Free tiers are ignored; committed-use and sustained
// use discounts are not applied.
type Prices struct {
	PubSubPerTiB    Price // publish and delivery throughput, each billed
	PubSubMinBytes  Price // billed minimum per publish, pull or push request
	FirestoreWrites Price // per 100,000 document writes
	FirestoreReads  Price // per 100,000 document reads (a query returning nothing: 1)
	E2CorePerHour   Price
	E2GiBPerHour    Price
	N2CorePerHour   Price
	N2GiBPerHour    Price
	AutopilotCore   Price // Autopilot general-purpose pods, per vCPU-hour requested
	AutopilotGiB    Price // per GiB-hour requested
	GKEClusterHour  Price // cluster management fee
	LBRuleHour      Price // a forwarding rule (first five)
	LBInboundPerGiB Price // data processed by the load balancer, client → backend
	EgressPerGiB0   Price // internet egress, premium tier, first TiB of the month
	EgressPerGiB1   Price // 1–10 TiB
	EgressPerGiB10  Price // beyond 10 TiB
	EgressTierTiB1  float64
	EgressTierTiB10 float64
}

const (
	pagePubSub    = "https://cloud.google.com/pubsub/pricing"
	pageFilter    = "https://cloud.google.com/pubsub/docs/filtering"
	pageFirestore = "https://cloud.google.com/firestore/pricing"
	pageCompute   = "https://cloud.google.com/compute/vm-instance-pricing"
	pageGKE       = "https://cloud.google.com/kubernetes-engine/pricing"
	pageNetwork   = "https://cloud.google.com/vpc/network-pricing"
	pageQuotas    = "https://cloud.google.com/pubsub/quotas"
	pageFSLimits  = "https://cloud.google.com/firestore/quotas"
	pageFSBest    = "https://cloud.google.com/firestore/docs/best-practices"
)

// GCP is the price list the model uses.
var GCP = Prices{
	PubSubPerTiB:    Price{40, "$ per TiB", pagePubSub},
	PubSubMinBytes:  Price{1000, "bytes per request", pagePubSub},
	FirestoreWrites: Price{0.09, "$ per 100,000 writes", pageFirestore},
	FirestoreReads:  Price{0.03, "$ per 100,000 reads", pageFirestore},
	E2CorePerHour:   Price{0.021811, "$ per vCPU-hour", pageCompute},
	E2GiBPerHour:    Price{0.002923, "$ per GiB-hour", pageCompute},
	N2CorePerHour:   Price{0.031611, "$ per vCPU-hour", pageCompute},
	N2GiBPerHour:    Price{0.004237, "$ per GiB-hour", pageCompute},
	AutopilotCore:   Price{0.0445, "$ per vCPU-hour", pageGKE},
	AutopilotGiB:    Price{0.0049225, "$ per GiB-hour", pageGKE},
	GKEClusterHour:  Price{0.10, "$ per cluster-hour", pageGKE},
	LBRuleHour:      Price{0.025, "$ per rule-hour", pageNetwork},
	LBInboundPerGiB: Price{0.008, "$ per GiB", pageNetwork},
	EgressPerGiB0:   Price{0.12, "$ per GiB", pageNetwork},
	EgressPerGiB1:   Price{0.11, "$ per GiB", pageNetwork},
	EgressPerGiB10:  Price{0.08, "$ per GiB", pageNetwork},
	EgressTierTiB1:  1,
	EgressTierTiB10: 10,
}

// Quotas are the published limits the model checks. Limits are fixed;
// quotas can be raised on request.
type Quotas struct {
	SubscriptionsPerTopic Price // limit
	TopicsPerProject      Price // limit
	StreamBytesPerSecond  Price // StreamingPull, per open stream (limit)
	PublishBytesPerSecond Price // per large region (quota)
	FirestoreDocWrites    Price // sustained writes per second to one document
	FirestoreRampStart    Price // the 500/50/5 rule: start at 500 ops/s
}

// Limits is the quota list the model uses.
var Limits = Quotas{
	SubscriptionsPerTopic: Price{10000, "subscriptions attached to one topic", pageQuotas},
	TopicsPerProject:      Price{10000, "topics per project", pageQuotas},
	StreamBytesPerSecond:  Price{10e6, "bytes/s per StreamingPull stream", pageQuotas},
	PublishBytesPerSecond: Price{200e6, "bytes/s published per large region (quota)", pageQuotas},
	FirestoreDocWrites:    Price{1, "writes/s sustained on one document", pageFSLimits},
	FirestoreRampStart:    Price{500, "ops/s on a new collection, +50 % every 5 minutes", pageFSBest},
}

// FilteredDeliveriesBilled records the rule the fan-out term rests on
// (pageFilter): "you incur message delivery fees ... for these messages"
// — the ones a subscription's filter drops and Pub/Sub acknowledges itself.
const FilteredDeliveriesBilled = true

// egressCost prices a month's internet egress on the tiered schedule.
func (p Prices) egressCost(gibPerMonth float64) float64 {
	t1, t10 := p.EgressTierTiB1*1024, p.EgressTierTiB10*1024
	first := min(gibPerMonth, t1)
	second := min(max(gibPerMonth-t1, 0), t10-t1)
	rest := max(gibPerMonth-t10, 0)
	return first*p.EgressPerGiB0.Value + second*p.EgressPerGiB1.Value + rest*p.EgressPerGiB10.Value
}
