package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// announce sends only the headers of a large analyze request and reads the
// answer: with a password set, one that is not logged in is answered at
// once, without its body being waited for or read.
func announce(t *testing.T, e *env, header string, n int) (int, string) {
	t.Helper()
	host := strings.TrimPrefix(e.URL, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/workflows/analyze HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n", host, n, header)
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer before the body (%q): %v", header, err)
	}
	defer resp.Body.Close()
	var env struct{ Error struct{ Code string } }
	json.NewDecoder(resp.Body).Decode(&env)
	return resp.StatusCode, env.Error.Code
}

func TestLargeBodyOnlyAfterLogin(t *testing.T) {
	e := start(t, options{password: password, sessionKey: key})
	big := []byte(`{"nodes":[],"extra":{"pad":"` + strings.Repeat("x", 1<<20) + `"}}`)
	post := func(hdr map[string]string) int {
		req, _ := http.NewRequest("POST", e.URL+"/api/workflows/analyze", bytes.NewReader(big))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// Logged in, by the password or a session, a large workflow is read.
	if status := post(map[string]string{"Authorization": "Bearer " + password}); status != 200 {
		t.Fatalf("1 MiB workflow with the password: %d", status)
	}
	_, cookie := login(t, e, password, nil)
	if status := post(map[string]string{"Cookie": "dashboard_session=" + cookie}); status != 200 {
		t.Fatalf("1 MiB workflow with a session: %d", status)
	}

	// Not logged in: refused from the headers alone.
	if status, code := announce(t, e, "", 16<<20); status != 401 || code != "unauthorized" {
		t.Fatalf("no credentials: %d %s, want 401", status, code)
	}
	if status, code := announce(t, e, "Cookie: dashboard_session=forged\r\n", 16<<20); status != 401 {
		t.Fatalf("a forged session: %d %s, want 401", status, code)
	}
	// A wrong password counts towards the lockout as anywhere else: a large
	// body is no way to guess without being locked out.
	for i := range 5 {
		if status, code := announce(t, e, "Authorization: Bearer guess\r\n", 16<<20); status != 401 {
			t.Fatalf("wrong password %d: %d %s, want 401", i+1, status, code)
		}
	}
	if status, code := announce(t, e, "Authorization: Bearer guess\r\n", 16<<20); status != 429 || code != "too_many_attempts" {
		t.Fatalf("after 5 wrong passwords: %d %s, want 429", status, code)
	}
}

// A locked-out client cannot tell the right Bearer password from a wrong
// one by announcing a large body: both are answered 429 at once.
func TestLockedOutBearerGetsNoLargeBody(t *testing.T) {
	e := start(t, options{password: password, sessionKey: key})
	for i := 0; i < 5; i++ {
		announce(t, e, "Authorization: Bearer guess\r\n", 16<<20)
	}
	for _, pw := range []string{"guess", password} {
		if status, code := announce(t, e, "Authorization: Bearer "+pw+"\r\n", 16<<20); status != 429 {
			t.Fatalf("Bearer %q while locked out: %d %s, want 429 at once", pw, status, code)
		}
	}
}
