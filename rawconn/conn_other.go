//go:build !linux

package rawconn

import "net"

func wrap(c net.Conn) (net.Conn, error) { return c, nil }
