//go:build unix

// Command dlbench measures the dashboard's downloader against other tools.
// It has two parts, so each can be timed as a whole process next to aria2c
// or curl:
//
//	dlbench serve [-addr 127.0.0.1:0] [-size 1073741824] [-rate 16000000]
//
// serves /f on loopback: size bytes of generated data (no file behind it),
// its SHA-256 as ETag, Range requests, and at most rate bytes a second on
// each TCP connection (0: as fast as it goes). It prints "ADDR host:port"
// and "SHA256 hex", then serves until its standard input closes.
//
//	dlbench fetch -url URL -size N -sha256 HEX [-connections 8] [-dir DIR]
//
// performs one download the way the dashboard does: a downloader.Manager
// installs a one-file preset (the .part, the ranges, the in-order SHA-256
// check, fsync, rename), through its public API. It prints one JSON line
// and exits 0 when the file landed verified.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"dashboard/downloader"
	"dashboard/model"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dlbench serve|fetch [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "fetch":
		err = fetch(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dlbench:", err)
		os.Exit(1)
	}
}

// blockSize is the generated data's unit: block i is one pseudo-random
// block with i in its first 8 bytes, so no two blocks are equal and any
// range can be made without holding the file.
const blockSize = 1 << 20

type content struct {
	base []byte
	size int64
}

func (c *content) readAt(p []byte, off int64) {
	for len(p) > 0 {
		i, in := off/blockSize, off%blockSize
		n := copy(p, c.base[in:])
		if in < 8 {
			var idx [8]byte
			binary.LittleEndian.PutUint64(idx[:], uint64(i))
			copy(p, idx[in:])
		}
		p, off = p[n:], off+int64(n)
	}
}

func (c *content) sha256() string {
	h := sha256.New()
	buf := make([]byte, blockSize)
	for off := int64(0); off < c.size; off += blockSize {
		n := min(blockSize, c.size-off)
		c.readAt(buf[:n], off)
		h.Write(buf[:n])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// pacer holds one TCP connection to rate bytes a second, whatever the
// requests on it: a token bucket that holds burst's worth of bytes, so a
// late wake-up is made up for but an idle connection saves up no more.
type pacer struct {
	mu   sync.Mutex
	rate float64
	next time.Time
}

const burst = 20 * time.Millisecond

func (p *pacer) wait(n int) {
	if p.rate <= 0 {
		return
	}
	p.mu.Lock()
	now := time.Now()
	if floor := now.Add(-burst); p.next.Before(floor) {
		p.next = floor
	}
	p.next = p.next.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	wait := time.Until(p.next)
	p.mu.Unlock()
	if wait > 0 {
		time.Sleep(wait)
	}
}

type pacerKey struct{}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	size := fs.Int64("size", 1<<30, "file size in bytes")
	rate := fs.Float64("rate", 0, "bytes a second per TCP connection; 0: unlimited")
	if err := fs.Parse(args); err != nil {
		return err
	}
	base := make([]byte, blockSize)
	rand.NewChaCha8([32]byte{42}).Read(base)
	c := &content{base: base, size: *size}
	sum := c.sha256()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Println("ADDR", ln.Addr().String())
	fmt.Println("SHA256", sum)
	go func() { io.Copy(io.Discard, os.Stdin); os.Exit(0) }() // the parent is gone: stop
	srv := &http.Server{
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, pacerKey{}, &pacer{rate: *rate})
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/f" {
				http.NotFound(w, r)
				return
			}
			from, to := int64(0), c.size
			status := http.StatusOK
			if v, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes="); ok {
				a, b, _ := strings.Cut(v, "-")
				f, err1 := strconv.ParseInt(a, 10, 64)
				if err1 != nil || f >= c.size {
					w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", c.size))
					w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
					return
				}
				from = f
				if l, err := strconv.ParseInt(b, 10, 64); err == nil {
					to = min(l+1, c.size)
				}
				status = http.StatusPartialContent
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, to-1, c.size))
			}
			w.Header().Set("ETag", `"`+sum+`"`)
			w.Header().Set("Accept-Ranges", "bytes")
			w.Header().Set("Content-Length", strconv.FormatInt(to-from, 10))
			w.WriteHeader(status)
			if r.Method == http.MethodHead {
				return
			}
			p := r.Context().Value(pacerKey{}).(*pacer)
			buf := make([]byte, 64<<10)
			for off := from; off < to; {
				n := min(int64(len(buf)), to-off)
				c.readAt(buf[:n], off)
				p.wait(int(n))
				if _, err := w.Write(buf[:n]); err != nil {
					return
				}
				off += n
			}
		}),
	}
	return srv.Serve(ln)
}

// result is what fetch prints.
type result struct {
	Seconds     float64 `json:"seconds"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	MaxRSSKiB   int64   `json:"max_rss_kib"`
	Connections int     `json:"connections"`
	Bytes       int64   `json:"bytes"`
}

func fetch(args []string) error {
	fs := flag.NewFlagSet("fetch", flag.ContinueOnError)
	url := fs.String("url", "", "file URL")
	size := fs.Int64("size", 0, "file size in bytes")
	sum := fs.String("sha256", "", "the file's SHA-256")
	conns := fs.Int("connections", downloader.DefaultConnections, "connections per file")
	dir := fs.String("dir", "", "folder to work in (default: a new temporary folder, removed after)")
	verbose := fs.Bool("v", false, "log the downloader's debug lines to stderr")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the download to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" || *size <= 0 || *sum == "" {
		return errors.New("fetch needs -url, -size and -sha256")
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "dlbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	presets := filepath.Join(*dir, "presets.yaml")
	yml := fmt.Sprintf("presets:\n  BENCH:\n    files:\n    - {path: bench/f.bin, url: %q, size: %d, sha256: %s}\n", *url, *size, *sum)
	if err := os.WriteFile(presets, []byte(yml), 0o644); err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	pub := &waiter{done: make(chan downloader.Download, 1)}
	m, err := downloader.New(downloader.Config{
		PresetsFile: presets, ModelsDir: filepath.Join(*dir, "models"), HFEndpoint: "http://127.0.0.1:1",
		History: &history{}, Recorder: recorder{}, Publisher: pub, Connections: *conns,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan struct{})
	go func() { m.Run(ctx); close(stopped) }()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	began := time.Now()
	if _, err := m.Install(ctx, "BENCH"); err != nil {
		return err
	}
	d := <-pub.done
	el := time.Since(began)
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cancel()
	<-stopped
	if d.Status != model.DownloadCompleted {
		return fmt.Errorf("download %s: %+v", d.Status, d.Error)
	}
	cpu := func(r *syscall.Rusage) float64 {
		return time.Duration(r.Utime.Nano() + r.Stime.Nano()).Seconds()
	}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	return json.NewEncoder(w).Encode(result{
		Seconds: el.Seconds(), CPUSeconds: cpu(&after) - cpu(&before), MaxRSSKiB: after.Maxrss,
		Connections: pub.most, Bytes: d.BytesDone,
	})
}

// waiter is the Publisher: it notes the most connections a frame showed and
// hands over the download's last frame.
type waiter struct {
	mu   sync.Mutex
	most int
	done chan downloader.Download
}

func (w *waiter) Publish(typ string, data any) {
	d, ok := data.(downloader.Download)
	if typ != model.FrameDownload || !ok {
		return
	}
	w.mu.Lock()
	w.most = max(w.most, d.Connections)
	w.mu.Unlock()
	if d.Status.Ended() {
		select {
		case w.done <- d:
		default:
		}
	}
}

// history keeps download_history in memory.
type history struct {
	mu   sync.Mutex
	next int64
}

func (h *history) StartDownload(_ context.Context, presetID string, filesTotal int) (model.DownloadRecord, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.next++
	return model.DownloadRecord{ID: h.next, PresetID: presetID, Status: model.DownloadRunning, FilesTotal: filesTotal, StartedAt: time.Now()}, nil
}

// StartVerify is never called: the benchmark only installs.
func (h *history) StartVerify(ctx context.Context, presetID string, filesTotal int) (model.DownloadRecord, error) {
	return h.StartDownload(ctx, presetID, filesTotal)
}

func (h *history) FinishDownload(context.Context, int64, model.DownloadEnd) error {
	return nil
}

func (h *history) GetDownload(_ context.Context, id int64) (model.DownloadRecord, error) {
	return model.DownloadRecord{}, model.Errorf(model.CodeNotFound, "There is no download %d.", id)
}

func (h *history) MarkInterrupted(context.Context) ([]model.DownloadRecord, error) { return nil, nil }

type recorder struct{}

func (recorder) Insert(_ context.Context, a model.Activity) (model.Activity, error) { return a, nil }
