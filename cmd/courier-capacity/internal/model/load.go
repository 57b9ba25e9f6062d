package model

import (
	"math"
	"math/rand/v2"
)

// Load is the traffic the model sizes for: how many users hold WebSocket
// sessions at once, and what they send. Every field is a stated assumption,
// printed with the tables.
type Load struct {
	Users           float64 // connected users (hold at least one session)
	SessionsPerUser float64 // tabs and devices per connected user
	SendsPerMinute  float64 // messages each connected user sends per minute
	// RecipientOnline is the chance that a recipient holds a session when a
	// message arrives (the rest read it from their inbox later).
	RecipientOnline float64
	PayloadBytes    float64
	// ReconnectsPerHour is how often a session is replaced (network change,
	// laptop sleep): each costs a catch-up query, and with presence two writes.
	ReconnectsPerHour float64
	// AckEveryFrame: the JavaScript client acks every message by default;
	// each ack is a Firestore read of the message and a write.
	AckEveryFrame bool
	Mix           Mix // recipients per message
}

// PingInterval is ws-edge's WS_PING_INTERVAL default: every session gets a
// ping frame (and sends a pong) this often.
const PingInterval = 20.0

// Stated is the traffic every size is modelled with, at its peak hour.
func Stated(users float64) Load {
	return Load{
		Users:             users,
		SessionsPerUser:   1.2,
		SendsPerMinute:    0.2,
		RecipientOnline:   0.5,
		PayloadBytes:      200,
		ReconnectsPerHour: 2,
		AckEveryFrame:     true,
		Mix:               Groups.Mix(),
	}
}

// PowerLaw draws recipients per message: P(k) ∝ k^-Alpha for k in
// [1, Max]. Most messages go to one person, a few to large groups.
type PowerLaw struct {
	Alpha float64
	Max   int
}

// Groups is the stated group-size law: one-to-one dominates (~60 %), the
// mean is ~3 recipients, and the largest group is WORKER_MAX_RECIPIENTS'
// ceiling (1,000).
var Groups = PowerLaw{Alpha: 2.2, Max: 1000}

// Mix is the exact distribution of the law.
func (p PowerLaw) Mix() Mix {
	m := Mix{}
	total := 0.0
	for k := 1; k <= p.Max; k++ {
		total += math.Pow(float64(k), -p.Alpha)
	}
	for k := 1; k <= p.Max; k++ {
		m = append(m, Share{K: k, W: math.Pow(float64(k), -p.Alpha) / total})
	}
	return m
}

// Sample draws n messages' recipient counts (inverse transform on the
// cumulative law) and returns their histogram as a Mix.
func (p PowerLaw) Sample(rng *rand.Rand, n int) Mix {
	exact := p.Mix()
	cum := make([]float64, len(exact))
	acc := 0.0
	for i, s := range exact {
		acc += s.W
		cum[i] = acc
	}
	counts := make([]int, len(exact))
	for range n {
		u := rng.Float64() * acc
		lo, hi := 0, len(cum)-1
		for lo < hi {
			mid := (lo + hi) / 2
			if cum[mid] < u {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		counts[lo]++
	}
	m := Mix{}
	for i, c := range counts {
		if c > 0 {
			m = append(m, Share{K: exact[i].K, W: float64(c) / float64(n)})
		}
	}
	return m
}

// Share is the fraction W of messages with K recipients.
type Share struct {
	K int
	W float64
}

// Mix is a distribution of recipients per message.
type Mix []Share

// Expect is the mean of f(k) over the mix.
func (m Mix) Expect(f func(k float64) float64) float64 {
	s := 0.0
	for _, x := range m {
		s += x.W * f(float64(x.K))
	}
	return s
}

// Mean is the mean number of recipients per message.
func (m Mix) Mean() float64 { return m.Expect(func(k float64) float64 { return k }) }

// Max is the largest recipient count in the mix.
func (m Mix) Max() int {
	mx := 0
	for _, x := range m {
		mx = max(mx, x.K)
	}
	return mx
}

// Sizes of what travels, estimated from the proto and JSON fields (not
// measured): an envelope carries the recipient list, a delivery one cursor
// per recipient and, up to 1 KiB, the courier_recipients attribute.
func envelopeBytes(payload, k float64) float64 { return payload + 120 + 12*k }

func deliveryBytes(payload, k float64) float64 {
	b := payload + 200 + 24*k
	if 11*k <= 1024 {
		b += 11 * k
	}
	return b
}

// Wire overheads per WebSocket frame to a browser (WebSocket header, TLS
// record, TCP/IP): a message frame is its JSON (the payload plus ~300 bytes
// of fields and cursor) plus those; a ping or pong, or a client's ack, is
// small.
const (
	frameOverhead = 85.0
	frameFields   = 300.0
	pingBytes     = 6 + frameOverhead
	ackBytes      = 70 + frameOverhead
)
