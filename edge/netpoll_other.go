//go:build !linux

package edge

import "errors"

const pollSupported = false

// poller is the epoll read path, Linux only; elsewhere every connection
// has a reader goroutine.
type poller struct{}

func newPoller(*Server) (*poller, error) { return nil, errors.New("edge: no epoll here") }
func (p *poller) add(*conn) error        { return errors.New("edge: no epoll here") }
func (p *poller) remove(*conn)           {}
func (p *poller) run()                   {}
func (p *poller) stop()                  {}
func (p *poller) close()                 {}
