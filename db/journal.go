package db

import (
	"fmt"
)

// Journal settings, as --db-journal takes them.
const (
	// JournalAuto picks by filesystem: the rollback journal on a network or
	// FUSE filesystem, WAL elsewhere.
	JournalAuto = "auto"
	// JournalWAL insists on WAL (falling back only to WAL without shared
	// memory, never to the rollback journal).
	JournalWAL = "wal"
	// JournalDelete insists on the rollback journal.
	JournalDelete = "delete"
)

// ValidJournal reports whether s is a journal setting.
func ValidJournal(s string) bool {
	return s == JournalAuto || s == JournalWAL || s == JournalDelete
}

// filesystem is what the database learns from statfs's magic number.
type filesystem struct {
	name string
	// shared: a filesystem other machines may mount at the same time, whose
	// page cache and locks the kernel does not share with them. WAL keeps
	// its index in shared memory (the -shm file, mapped), which only works
	// between processes of one machine, so these get the rollback journal.
	shared bool
}

// filesystems maps statfs f_type magic numbers (linux/magic.h and the
// filesystems' own headers) to what they are. Numbers not listed are taken
// as local.
var filesystems = map[int64]filesystem{
	// Network and cluster filesystems.
	0x6969:     {"nfs", true},
	0x517b:     {"smb", true},
	0xff534d42: {"cifs", true},
	0xfe534d42: {"smb2", true},
	0x564c:     {"ncp", true},
	0x65735546: {"fuse", true}, // MooseFS (RunPod's network volumes), GlusterFS, s3fs, sshfs, bindfs, virtiofs
	0x00c36400: {"ceph", true},
	0x01021997: {"9p", true},
	0x0bd00bd0: {"lustre", true},
	0x5346414f: {"afs", true},
	0x6b414653: {"kafs", true},
	0x73757245: {"coda", true},
	0x47504653: {"gpfs", true},
	0x7461636f: {"ocfs2", true},
	0x01161970: {"gfs2", true},
	0x19830326: {"beegfs", true},
	0x20030528: {"orangefs", true},
	0x786f4256: {"vboxsf", true},
	0x013111a8: {"ibrix", true},
	0xaad7aaea: {"panfs", true},

	// Local filesystems, named for the log.
	0xef53:     {"ext4", false},
	0x58465342: {"xfs", false},
	0x9123683e: {"btrfs", false},
	0x01021994: {"tmpfs", false},
	0x794c7630: {"overlayfs", false},
	0x2fc12fc1: {"zfs", false},
	0xf2f52010: {"f2fs", false},
	0x4d44:     {"vfat", false},
	0x5346544e: {"ntfs", false},
	0x2011bab0: {"exfat", false},
	0x3153464a: {"jfs", false},
	0x52654973: {"reiserfs", false},
	0x858458f6: {"ramfs", false},
	0x9fa0:     {"proc", false},
}

// classify names the filesystem with magic number m.
func classify(m int64) filesystem {
	if fs, ok := filesystems[m]; ok {
		return fs
	}
	return filesystem{name: fmt.Sprintf("0x%x", m)}
}

// journalChoice is what Open does about the journal, and why (for the log).
type journalChoice struct {
	// modes to try, best first; the first that works is used.
	modes  []string
	fs     string // the filesystem's name, "" when statfs failed
	reason string
}

// chooseJournal decides the journal modes for setting on a filesystem with
// magic number magic (statErr non-nil when statfs failed).
func chooseJournal(setting string, magic int64, statErr error) journalChoice {
	var fs filesystem
	if statErr == nil {
		fs = classify(magic)
	}
	switch setting {
	case JournalWAL:
		return journalChoice{modes: []string{journalWAL, journalWALExclusive}, fs: fs.name,
			reason: "--db-journal wal asks for WAL"}
	case JournalDelete:
		return journalChoice{modes: []string{journalDelete}, fs: fs.name,
			reason: "--db-journal delete asks for the rollback journal"}
	}
	switch {
	case statErr != nil:
		return journalChoice{modes: []string{journalWAL, journalWALExclusive, journalDelete},
			reason: fmt.Sprintf("the filesystem could not be identified (%v); WAL if it works", statErr)}
	case fs.shared:
		return journalChoice{modes: []string{journalDelete}, fs: fs.name,
			reason: fmt.Sprintf("the database is on a network or FUSE filesystem (%s), where WAL's shared memory is not shared between machines", fs.name)}
	default:
		return journalChoice{modes: []string{journalWAL, journalWALExclusive, journalDelete}, fs: fs.name,
			reason: fmt.Sprintf("the database is on a local filesystem (%s)", fs.name)}
	}
}
