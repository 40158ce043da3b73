package model

import "time"

// DownloadStatus is where a download is in its life. The download_history
// table stores the same words: a row is "downloading" from the moment the
// download is queued until it ends.
type DownloadStatus string

// The download statuses.
const (
	DownloadQueued    DownloadStatus = "queued"
	DownloadRunning   DownloadStatus = "downloading"
	DownloadCompleted DownloadStatus = "completed"
	DownloadFailed    DownloadStatus = "failed"
	DownloadCancelled DownloadStatus = "cancelled"
)

// Ended reports whether s is a final status.
func (s DownloadStatus) Ended() bool {
	return s == DownloadCompleted || s == DownloadFailed || s == DownloadCancelled
}

// DownloadKind says what a download does: an install fetches a preset's
// missing files, a verify checksums the files already in place. Both run
// through the one queue, with the same progress, cancel and history.
type DownloadKind string

// The kinds of download; download_history stores the same words.
const (
	KindInstall DownloadKind = "install"
	KindVerify  DownloadKind = "verify"
)

// DownloadPhase says what a running download is doing.
type DownloadPhase string

// The phases of a running download (a download that is not running has none).
const (
	PhaseDownloading DownloadPhase = "downloading"
	PhaseVerifying   DownloadPhase = "verifying" // checksumming bytes already written
)

// InterruptedMessage is the sentence a download stopped by a shutdown or a
// restart carries (code CodeInterrupted); download_history keeps the code.
const InterruptedMessage = "The dashboard stopped while this download ran; retry it to resume."

// DownloadRecord is one row of download_history, as GET
// /api/downloads/history sends it.
type DownloadRecord struct {
	ID       int64        `json:"id"`
	PresetID string       `json:"preset_id"`
	Kind     DownloadKind `json:"kind"` // "install" for rows from before kinds were kept
	// PresetName is the preset's name in presets.yaml now, filled in by the
	// server; the id when the preset is gone.
	PresetName   string         `json:"preset_name"`
	Status       DownloadStatus `json:"status"`
	ErrorMessage string         `json:"error_message"` // as stored: "interrupted" for a restart
	// Error is the failure as a code and a sentence, like a Download's;
	// null when it did not fail. Rows from before error codes were kept
	// have an empty code, except interrupted ones.
	Error          *Error     `json:"error"`
	FilesCompleted int        `json:"files_completed"`
	FilesTotal     int        `json:"files_total"`
	BytesDone      int64      `json:"bytes_done"`  // fetched by this download; 0 for rows from before sizes were kept
	BytesTotal     int64      `json:"bytes_total"` // it had to fetch
	StartedAt      time.Time  `json:"started_at"`  // when it was queued
	CompletedAt    *time.Time `json:"completed_at"`
	// DurationSeconds is from queued to ended, whole seconds; null while
	// it runs.
	DurationSeconds *int64 `json:"duration_seconds"`
}

// DownloadEnd is how a download ended, as download_history keeps it.
type DownloadEnd struct {
	Status         DownloadStatus
	Error          *Error // nil when it completed or was cancelled
	FilesCompleted int
	FilesTotal     int
	BytesDone      int64
	BytesTotal     int64
}

// ModelFile is a file the dashboard put in place in the models folder and
// the SHA-256 it was verified against. Size and ModTime are the file's when
// it was recorded: a file that no longer has both was replaced since.
type ModelFile struct {
	Path     string // relative to the models folder, slash-separated
	SHA256   string // lower-case hex
	Size     int64
	ModTime  time.Time
	PresetID string // the preset it was installed for
}

// IsSHA256 reports whether s is a SHA-256 written in hex (64 digits, either
// case), as presets, workflows and servers give checksums.
func IsSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// CorruptFile is a file a verify found not to match the SHA-256 it should
// have. Size and ModTime are the file's when it was checked: a file that no
// longer has both was replaced since, and is no longer known to be corrupt.
type CorruptFile struct {
	Path     string // relative to the models folder, slash-separated
	Size     int64
	ModTime  time.Time
	Expected string // the SHA-256 it should have, lower-case hex
	Actual   string // the SHA-256 it has
	FoundAt  time.Time
}
