package system

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// volume reads the workspace's filesystem. With VolumeSize set, the total is
// the configured size and Snapshot fills in used and free from the models;
// fsFree is then statfs's free space, a bound on that free (-1: unknown).
func (m *Monitor) volume() (v Volume, fsFree int64) {
	fsFree = -1
	v = Volume{Path: m.cfg.Workspace, Source: SourceStatfs}
	st, err := statfs(m.cfg.Workspace)
	if err != nil {
		if !m.volFailing {
			m.log.Warn("volume size unknown", "path", m.cfg.Workspace, "err", err)
			m.volFailing = true
		}
	} else {
		if m.volFailing {
			m.log.Info("volume size readable again", "path", m.cfg.Workspace)
			m.volFailing = false
		}
		v.TotalBytes, v.UsedBytes, v.FreeBytes = st.total, st.used, st.free
		fsFree = st.free
		v.Filesystem = filesystemName(m.cfg.Workspace, st.magic, filepath.Join(m.cfg.ProcDir, "self", "mountinfo"))
	}
	if m.cfg.VolumeSize > 0 {
		v.TotalBytes, v.Source = m.cfg.VolumeSize, SourceConfig
	}
	return v, fsFree
}

// configuredFree is the free space with VolumeSize set: the size less what
// the models folder holds, and never more than the filesystem itself says
// is free (a full cluster or a quota below the configured size). fsFree < 0
// when statfs could not say.
func (m *Monitor) configuredFree(fsFree int64) int64 {
	free := max(0, m.cfg.VolumeSize-m.models.snapshot().Bytes-m.models.partBytes())
	if fsFree >= 0 {
		free = min(free, fsFree)
	}
	return free
}

// fsStat is what statfs tells about a filesystem, in bytes.
type fsStat struct {
	total, used, free int64
	magic             int64
}

// filesystemName is the type of the filesystem path is on: the mount table's
// name when path is found in it (it tells nfs4 from nfs and names FUSE
// filesystems, "fuse.mfsmount"), else the name of statfs's magic number.
func filesystemName(path string, magic int64, mountinfo string) string {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	if data, err := os.ReadFile(mountinfo); err == nil {
		if name := mountType(data, path); name != "" {
			return name
		}
	}
	return magicNames[magic]
}

// mountType finds the mount holding path in /proc/self/mountinfo's text (the
// one with the longest matching mount point; a later mount over the same
// point wins) and returns its filesystem type.
func mountType(mountinfo []byte, path string) string {
	best, bestLen := "", -1
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+1 >= len(fields) {
			continue
		}
		point := unescapeMount(fields[4])
		if !within(path, point) || len(point) < bestLen {
			continue
		}
		best, bestLen = fields[sep+1], len(point)
	}
	return best
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// magicNames name statfs's f_type for the filesystems pods are found on.
var magicNames = map[int64]string{
	0xEF53:     "ext4", // ext2, ext3 and ext4 share it
	0x58465342: "xfs",
	0x9123683E: "btrfs",
	0x2FC12FC1: "zfs",
	0x01021994: "tmpfs",
	0x794C7630: "overlay",
	0x6969:     "nfs",
	0x65735546: "fuse",
	0x00C36400: "ceph",
	0xFF534D42: "cifs",
	0xFE534D42: "smb2",
	0x01021997: "9p",
	0x73717368: "squashfs",
	0x47504653: "gpfs",
	0x0BD00BD0: "lustre",
}
