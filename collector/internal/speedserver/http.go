package speedserver

import (
	"crypto/subtle"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// handler serves the three HTTP resources of the protocol. The path alone
// selects the resource: a query string (a client's cache buster, an agent's
// token) is accepted and ignored.
func (s *Server) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if s.token != "" && subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("token")), []byte(s.token)) != 1 {
			http.Error(w, "forbidden: this speed-test server needs ?token=", http.StatusForbidden)
			return
		}
		switch p := r.URL.Path; {
		case p == "/speedtest/latency.txt":
			if !allow(w, r, http.MethodGet, http.MethodHead) {
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Content-Length", "10")
			if r.Method == http.MethodGet {
				_, _ = io.WriteString(w, "test=test\n")
			}
		case isRandomJPG(p):
			if !allow(w, r, http.MethodGet, http.MethodHead) {
				return
			}
			s.download(w, r)
		case p == "/speedtest/upload.php":
			if !allow(w, r, http.MethodPost) {
				return
			}
			s.upload(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// allow answers 405 and reports false unless r uses one of methods.
func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

// isRandomJPG reports whether p is /speedtest/random<N>x<M>.jpg with N and M
// of one to five digits (clients ask for 350 to 4000).
func isRandomJPG(p string) bool {
	rest, ok := strings.CutPrefix(p, "/speedtest/random")
	if !ok {
		return false
	}
	rest, ok = strings.CutSuffix(rest, ".jpg")
	if !ok {
		return false
	}
	a, b, ok := strings.Cut(rest, "x")
	return ok && digits(a) && digits(b)
}

func digits(s string) bool {
	if len(s) == 0 || len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// download writes s.downloadBytes of random data, cycling through the buffer
// made once in New. Clients close the connection when their capture time
// ends; the write then fails and the handler returns.
func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(transferTimeout))
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.FormatInt(s.downloadBytes, 10))
	if r.Method == http.MethodHead {
		return
	}
	w.WriteHeader(http.StatusOK)
	for left, off := s.downloadBytes, 0; left > 0; {
		n := min(int64(writeChunkBytes), int64(len(s.random)-off), left)
		k, err := w.Write(s.random[off : off+int(n)])
		s.sent.Add(int64(k))
		if err != nil {
			return
		}
		left -= int64(k)
		off += k
		if off == len(s.random) {
			off = 0
		}
	}
}

// upload reads the whole body, at most s.maxUploadBytes, and answers
// "size=<n>". A larger body gets 413.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > s.maxUploadBytes {
		tooLarge(w, s.maxUploadBytes)
		return
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(transferTimeout))
	body := http.MaxBytesReader(w, r.Body, s.maxUploadBytes)
	bufp := s.uploadBuf.Get().(*[]byte)
	defer s.uploadBuf.Put(bufp)
	var size int64
	for {
		n, err := body.Read(*bufp)
		size += int64(n)
		s.received.Add(int64(n))
		if err == io.EOF {
			break
		}
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				tooLarge(w, s.maxUploadBytes)
			}
			return // otherwise the client went away: nobody to answer
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "size="+strconv.FormatInt(size, 10))
}

func tooLarge(w http.ResponseWriter, limit int64) {
	w.Header().Set("Connection", "close")
	http.Error(w, "upload larger than "+strconv.FormatInt(limit, 10)+" bytes", http.StatusRequestEntityTooLarge)
}
