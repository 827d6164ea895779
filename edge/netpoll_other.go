//go:build !linux

package edge

import (
	"errors"
	"net"
	"syscall"
)

const pollSupported = false

// poller is the epoll path, Linux only; elsewhere every connection has a
// reader goroutine and conn.fd is always -1, so these are never reached.
type poller struct{}

func newPoller(*Server) (*poller, error) { return nil, errors.New("edge: no epoll here") }
func (p *poller) add(*conn) error        { return errors.New("edge: no epoll here") }
func (p *poller) wantWrite(*conn, bool)  {}
func (p *poller) release(*conn)          {}
func (p *poller) run()                   {}
func (p *poller) stop()                  {}
func (p *poller) close()                 {}

func writeFD(int32, []byte) (int, error)    { return 0, errors.New("edge: no epoll here") }
func shutdownWrite(int32)                   {}
func (p *poller) listen(net.Listener) error { return errors.New("edge: no epoll here") }
func (p *poller) unlisten()                 {}

func listenControl(int) func(network, address string, c syscall.RawConn) error { return nil }
