package edge

import (
	"crypto/tls"
	"net"
)

func tlsServer(nc net.Conn, cfg *tls.Config) net.Conn { return tls.Server(nc, cfg) }
