package edge

import (
	"crypto/subtle"
	"encoding/json"
	"strconv"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/wire"
)

// innerAuth logs in the original framework's push client.
func (c *conn) innerAuth(password string) {
	s := c.srv
	if s.cfg.InnerPassword == "" || subtle.ConstantTimeCompare([]byte(password), []byte(s.cfg.InnerPassword)) != 1 {
		s.metrics.auths.WithLabelValues("refused").Inc()
		reason := wire.FailInnerRefused
		if s.cfg.InnerPassword == "" {
			reason = wire.FailInnerDisabled
		}
		c.logger().Warn("inner auth refused", "reason", reason)
		c.fail(ReasonAuthFailed, wire.URIAuthFailed, reason)
		return
	}
	if !c.state.CompareAndSwap(stateNew, stateInner) {
		return
	}
	s.metrics.auths.WithLabelValues("ok").Inc()
	c.refundLoginToken()
	c.touch()
	c.logger().Info("inner push client logged in")
	c.sendControl(wire.URIAuthSuccess, `{"heartbeat":`+strconv.Itoa(s.heartbeatSecs)+`}`)
}

// innerMessage is the body of /logic/send/msg.
type innerMessage struct {
	UID  string `json:"uid"`
	URI  string `json:"uri"`
	Body string `json:"body"`
}

// innerSend publishes an inner push on the bus, so it reaches the user on
// whichever edge holds them.
func (c *conn) innerSend(body string) {
	var im innerMessage
	if err := json.Unmarshal([]byte(body), &im); err != nil {
		c.logger().Warn("inner push: bad body", "err", err)
		return
	}
	if wire.Reserved(im.URI) {
		c.logger().Warn("inner push: reserved uri refused", "uri", im.URI)
		return
	}
	p := bus.Push{UID: im.UID, URI: im.URI, Body: []byte(im.Body)}
	if err := bus.Publish(c.srv.bus, p); err != nil {
		c.logger().Warn("inner push refused", "err", err)
		return
	}
	c.srv.metrics.innerPushes.Inc()
}
