package system

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size bytes on a new folder. It needs root;
// without the right it skips, except in CI where it must run.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("tmpfs is Linux's")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a tmpfs (CI must be able to): %v", err)
		}
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			t.Skipf("mounting a tmpfs is not permitted here (%v); set CI=true to make this a failure", err)
		}
		t.Fatalf("mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func TestVolumeFromStatfsOnTmpfs(t *testing.T) {
	ws := mountTmpfs(t, "16m")
	m := New(Config{Workspace: ws, ModelsDir: filepath.Join(ws, "models")})
	v := m.Snapshot(context.Background()).Volume
	if v.Path != ws || v.Filesystem != "tmpfs" || v.Source != SourceStatfs {
		t.Fatalf("volume = %+v, want a tmpfs read by statfs", v)
	}
	if v.TotalBytes != 16<<20 {
		t.Fatalf("total = %d, want 16 MiB", v.TotalBytes)
	}
	if v.UsedBytes > 64<<10 || v.FreeBytes < 16<<20-64<<10 {
		t.Fatalf("an empty tmpfs: used %d, free %d", v.UsedBytes, v.FreeBytes)
	}

	if err := os.WriteFile(filepath.Join(ws, "four-mib"), make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(fresh) // the last reading is reused for a second
	v = m.Snapshot(context.Background()).Volume
	if v.UsedBytes < 4<<20 || v.UsedBytes > 4<<20+64<<10 || v.FreeBytes > 12<<20 || v.FreeBytes < 12<<20-64<<10 {
		t.Fatalf("after writing 4 MiB: used %d, free %d", v.UsedBytes, v.FreeBytes)
	}
}

// VOLUME_SIZE_GB: the total is the configured size, used is the models
// folder as counted (downloads in progress included), free the rest.
func TestVolumeSizeFromConfig(t *testing.T) {
	ws := t.TempDir()
	models := filepath.Join(ws, "models")
	write(t, filepath.Join(models, "checkpoints", "a.safetensors"), 3000)
	write(t, filepath.Join(models, "loras", "b.safetensors"), 500)
	write(t, filepath.Join(models, "loras", "c.safetensors.part"), 200)
	m := New(Config{Workspace: ws, ModelsDir: models, VolumeSize: 10_000})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// The downloader asks before a download: the folder as counted.
	for m.Snapshot(context.Background()).Models.CountedAt == nil {
		time.Sleep(10 * time.Millisecond)
	}
	free, err := m.FreeSpace(models)
	if err != nil || free != 10_000-3700 {
		t.Fatalf("FreeSpace = %d, %v; want 6300", free, err)
	}
	v := m.Snapshot(context.Background()).Volume
	want := Volume{Path: ws, Filesystem: v.Filesystem, TotalBytes: 10_000, UsedBytes: 3700, FreeBytes: 6300, Source: SourceConfig}
	if v != want {
		t.Fatalf("volume = %+v, want %+v", v, want)
	}
	if v.Filesystem == "" && runtime.GOOS == "linux" {
		t.Errorf("the filesystem's type is still read with a configured size")
	}

	// A file landing counts at once, with no walk.
	m.Added("checkpoints/new.safetensors", 2500)
	time.Sleep(fresh)
	if v := m.Snapshot(context.Background()).Volume; v.UsedBytes != 6200 || v.FreeBytes != 3800 {
		t.Fatalf("after a 2500-byte file landed: %+v", v)
	}
	if free, _ := m.FreeSpace(models); free != 3800 {
		t.Fatalf("FreeSpace after the file = %d", free)
	}
	m.Added("loras/huge.safetensors", 1_000_000)
	if free, _ := m.FreeSpace(models); free != 0 {
		t.Fatalf("FreeSpace of an over-full volume = %d, want 0", free)
	}
}

// The downloader asks for the free space holding the lock every download's
// start and end need: the answer never waits for a walk (on a slow network
// volume one takes minutes). Before the first walk it is the bound the
// configured size and statfs give.
func TestFreeSpaceNeverWaitsForTheWalk(t *testing.T) {
	ws := t.TempDir()
	models := filepath.Join(ws, "models")
	write(t, filepath.Join(models, "loras", "b.safetensors"), 500)
	m := New(Config{Workspace: ws, ModelsDir: models, VolumeSize: 10_000}) // not run: no walk ever ends
	type answer struct {
		free uint64
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		free, err := m.FreeSpace(models)
		got <- answer{free, err}
	}()
	select {
	case a := <-got:
		if a.err != nil || a.free != 10_000 {
			t.Fatalf("FreeSpace before any walk = %d, %v; want the configured 10000", a.free, a.err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("FreeSpace waited for a walk")
	}
}

// A configured size larger than the filesystem: free is never more than
// statfs says a writer may use, in the answer to the downloader and in the
// panel.
func TestConfiguredFreeBoundByStatfs(t *testing.T) {
	ws := t.TempDir()
	models := filepath.Join(ws, "models")
	write(t, filepath.Join(models, "loras", "b.safetensors"), 500)
	fsFree, err := statfsFree(models)
	if err != nil {
		t.Skip("statfs:", err)
	}
	m := New(Config{Workspace: ws, ModelsDir: models, VolumeSize: 1 << 60})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for m.Snapshot(context.Background()).Models.CountedAt == nil {
		time.Sleep(10 * time.Millisecond)
	}
	slack := uint64(1 << 30) // others write to this filesystem meanwhile; still far below 1<<60
	if free, err := m.FreeSpace(models); err != nil || free > fsFree+slack {
		t.Errorf("FreeSpace = %d, %v; statfs says %d", free, err, fsFree)
	}
	time.Sleep(fresh)
	if v := m.Snapshot(context.Background()).Volume; uint64(v.FreeBytes) > fsFree+slack || v.TotalBytes != 1<<60 {
		t.Errorf("volume = %+v; statfs says %d free", v, fsFree)
	}
}

func TestMountType(t *testing.T) {
	info := []byte(`22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 0:40 / /workspace rw,relatime shared:5 - fuse.mfsmount mfs#mfsmaster:9421 rw,user_id=0
41 40 0:41 / /workspace/nfs rw - nfs4 server:/export rw,vers=4.2
42 27 0:42 / /space\040here rw - tmpfs tmpfs rw
43 27 0:43 / /workspace2 rw - xfs /dev/sdb rw
bad line
`)
	for _, tc := range []struct{ path, want string }{
		{"/workspace", "fuse.mfsmount"},
		{"/workspace/models/checkpoints", "fuse.mfsmount"},
		{"/workspace/nfs/x", "nfs4"},
		{"/workspace2", "xfs"},
		{"/workspacex", "ext4"},
		{"/space here/a", "tmpfs"},
		{"/home/user", "ext4"},
	} {
		if got := mountType(info, tc.path); got != tc.want {
			t.Errorf("mountType(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
	// Without the mount table, statfs's magic number names it.
	if got := filesystemName("/nowhere", 0x6969, filepath.Join(t.TempDir(), "missing")); got != "nfs" {
		t.Errorf("by magic number: %q", got)
	}
}

func write(t testing.TB, path string, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
}
