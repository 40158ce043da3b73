package db

import (
	"encoding/json"
	"time"
)

// Activity types and statuses the activity log accepts.
const (
	TypeDownload   = "download"
	TypeGeneration = "generation"
	TypeError      = "error"

	StatusStarted   = "started"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
)

// Download history statuses. A row is "downloading" until it finishes.
const (
	DownloadRunning   = "downloading"
	DownloadCompleted = "completed"
	DownloadFailed    = "failed"
	DownloadCancelled = "cancelled"
)

// Activity is one row of the activity log, shaped as the API sends it.
type Activity struct {
	ID        int64           `json:"id"`
	Type      string          `json:"type"`
	Status    string          `json:"status"`
	Title     string          `json:"title"`
	Subtitle  string          `json:"subtitle"`
	Details   json.RawMessage `json:"details"` // nil is sent as null
	CreatedAt time.Time       `json:"created_at"`
}

// ActivityFilter selects activity rows, newest first. Empty fields match all;
// Before > 0 returns only rows with a smaller id (keyset pagination).
type ActivityFilter struct {
	Type   string
	Status string
	Before int64
	Limit  int
}

// DownloadRecord is one row of download_history.
type DownloadRecord struct {
	ID             int64      `json:"id"`
	PresetID       string     `json:"preset_id"`
	Status         string     `json:"status"`
	ErrorMessage   string     `json:"error_message"`
	FilesCompleted int        `json:"files_completed"`
	FilesTotal     int        `json:"files_total"`
	StartedAt      time.Time  `json:"started_at"`
	CompletedAt    *time.Time `json:"completed_at"`
}
