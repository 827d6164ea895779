package edge

import (
	"encoding/json"
	"hash/maphash"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/wire"
)

// maxBatch bounds how many bus messages a dispatcher takes before flushing
// sockets, so latency stays low under load.
const maxBatch = 4096

// dispatcher writes the bus messages of its share of users to their
// sockets. All messages of one user go through one dispatcher, so each
// user's pushes stay in order.
type dispatcher struct {
	srv   *Server
	ch    chan *nats.Msg
	dirty []*conn
	reply []byte
}

func newDispatcher(s *Server, queue int) *dispatcher {
	return &dispatcher{srv: s, ch: make(chan *nats.Msg, queue)}
}

var shardSeed = maphash.MakeSeed()

// subscribe subscribes a user's subject onto its dispatcher's queue. nats.go
// then starts no goroutine per subscription.
func (s *Server) subscribe(uid string) (*nats.Subscription, error) {
	d := s.shards[0]
	if len(s.shards) > 1 {
		d = s.shards[maphash.String(shardSeed, uid)%uint64(len(s.shards))]
	}
	return s.bus.ChanSubscribe(bus.UserPrefix+uid, d.ch)
}

func (d *dispatcher) run() {
	batch := make([]*nats.Msg, 0, maxBatch)
	for {
		select {
		case m := <-d.ch:
			batch = append(batch[:0], m)
		case <-d.srv.ctx.Done():
			return
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case m := <-d.ch:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		d.handle(batch)
		clear(batch)
	}
}

// pending is a delivery reply to send once the batch is flushed.
type pending struct {
	reply string
	n     int
}

func (d *dispatcher) handle(batch []*nats.Msg) {
	start := time.Now()
	d.srv.metrics.batches.Observe(float64(len(batch)))
	var replies []pending
	var targets [8]*conn
	delivered := 0
	for _, m := range batch {
		uid, ok := bus.UIDFromSubject(m.Subject)
		if !ok {
			continue
		}
		conns := d.srv.reg.conns(uid, targets[:0])
		op := ""
		if m.Header != nil {
			op = m.Header.Get(bus.HeaderOp)
		}
		switch op {
		case "":
			n := d.deliver(m, conns)
			delivered += n
			if m.Reply != "" {
				replies = append(replies, pending{m.Reply, n})
			}
		case bus.OpPresence:
			d.replyPresence(m, uid, conns)
		case bus.OpKick:
			d.kick(m, conns)
		}
		clear(targets[:])
	}
	for i, c := range d.dirty {
		c.dirty = false
		c.flush()
		d.dirty[i] = nil
	}
	d.dirty = d.dirty[:0]
	if delivered > 0 {
		d.srv.metrics.pushesOut.Add(float64(delivered))
		d.srv.metrics.pushLatency.Observe(time.Since(start).Seconds())
	}
	for _, p := range replies {
		d.reply = appendDelivered(d.reply[:0], p.n, d.srv.id)
		_ = d.srv.bus.Publish(p.reply, d.reply)
	}
}

// deliver queues m on each connection and reports how many took it.
func (d *dispatcher) deliver(m *nats.Msg, conns []*conn) int {
	d.srv.metrics.pushesIn.Inc()
	uri, seq, hasSeq := wire.URIPush, int64(0), false
	if m.Header != nil {
		if u := m.Header.Get(bus.HeaderURI); u != "" {
			uri = u
		}
		if v := m.Header.Get(bus.HeaderSeq); v != "" {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				seq, hasSeq = n, true
			}
		}
	}
	if wire.Reserved(uri) {
		d.srv.metrics.refusedPushes.Inc()
		d.srv.log.Warn("push with a reserved uri dropped", "subject", m.Subject, "uri", uri)
		return 0
	}
	if len(m.Data)+len(uri)+64 > d.srv.cfg.MaxFrameSize {
		d.srv.metrics.refusedPushes.Inc()
		d.srv.log.Warn("push larger than MaxFrameSize dropped", "subject", m.Subject, "bytes", len(m.Data))
		return 0
	}
	n := 0
	for _, c := range conns {
		err := c.enqueuePush(seq, hasSeq, uri, m.Data)
		if err == errQueueFull {
			// The batch queued a burst before writing: write what is queued,
			// then see whether the socket took it.
			c.flush()
			err = c.enqueuePush(seq, hasSeq, uri, m.Data)
		}
		switch err {
		case nil:
			n++
			if !c.dirty {
				c.dirty = true
				d.dirty = append(d.dirty, c)
			}
		case errQueueFull:
			d.srv.metrics.queueDrops.WithLabelValues("conn").Inc()
			c.close(ReasonSlow)
		}
	}
	return n
}

func (d *dispatcher) replyPresence(m *nats.Msg, uid string, conns []*conn) {
	if m.Reply == "" {
		return
	}
	rep := bus.PresenceReply{UID: uid, Edge: d.srv.id, Conns: make([]bus.ConnInfo, 0, len(conns))}
	for _, c := range conns {
		rep.Conns = append(rep.Conns, c.info())
	}
	data, _ := json.Marshal(rep)
	_ = d.srv.bus.Publish(m.Reply, data)
}

func (d *dispatcher) kick(m *nats.Msg, conns []*conn) {
	spare := m.Header.Get(bus.HeaderConn)
	n := 0
	for _, c := range conns {
		if c.id() == spare {
			continue
		}
		c.fail(ReasonKicked, wire.URIAuthFailed, wire.FailKicked)
		n++
	}
	if m.Reply != "" {
		data, _ := json.Marshal(bus.KickReply{Kicked: n, Edge: d.srv.id})
		_ = d.srv.bus.Publish(m.Reply, data)
	}
}
