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

// DownloadRecord is one row of download_history.
type DownloadRecord struct {
	ID             int64          `json:"id"`
	PresetID       string         `json:"preset_id"`
	Status         DownloadStatus `json:"status"`
	ErrorMessage   string         `json:"error_message"`
	FilesCompleted int            `json:"files_completed"`
	FilesTotal     int            `json:"files_total"`
	StartedAt      time.Time      `json:"started_at"`
	CompletedAt    *time.Time     `json:"completed_at"`
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
