package rawconn

import (
	"net"
	"time"
)

// Dialer dials TCP connections with raw reads and writes. It satisfies
// nats.go's CustomDialer.
type Dialer struct {
	// Timeout per dial. Zero means no timeout beyond the system's.
	Timeout time.Duration
}

// Dial connects to address and wraps the connection.
func (d Dialer) Dial(network, address string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.Timeout}
	c, err := nd.Dial(network, address)
	if err != nil {
		return nil, err
	}
	return wrap(c)
}
