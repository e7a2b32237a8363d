package probe

import (
	"net"
	"testing"
	"time"
)

// TestSocketUnread: bytes received by the kernel and not read yet are seen.
func TestSocketUnread(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	defer s.Close()

	if n := socketUnread(c); n != 0 {
		t.Errorf("unread before any data = %d, want 0", n)
	}
	if _, err := s.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for socketUnread(c) != 1000 {
		if time.Now().After(deadline) {
			t.Fatalf("unread = %d, want 1000", socketUnread(c))
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := c.Read(make([]byte, 600)); err != nil {
		t.Fatal(err)
	}
	if n := socketUnread(c); n != 400 {
		t.Errorf("unread after reading 600 = %d, want 400", n)
	}
	// A counting wrapper is not a syscall.Conn: the stream asks the
	// connection underneath.
	if n := socketUnread(&countingConn{Conn: c}); n != 0 {
		t.Errorf("unread through a wrapper = %d, want 0", n)
	}
}
