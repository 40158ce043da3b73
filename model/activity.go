package model

import (
	"encoding/json"
	"fmt"
	"time"
)

// ActivityType says what an activity row is about.
type ActivityType string

// The activity types the log accepts.
const (
	ActivityDownload   ActivityType = "download"
	ActivityGeneration ActivityType = "generation"
	ActivityError      ActivityType = "error"
)

// ActivityTypes lists every activity type, in the order messages name them.
var ActivityTypes = []ActivityType{ActivityDownload, ActivityGeneration, ActivityError}

// ActivityStatus says how far the event an activity row records has got.
type ActivityStatus string

// The activity statuses the log accepts.
const (
	ActivityStarted   ActivityStatus = "started"
	ActivityCompleted ActivityStatus = "completed"
	ActivityFailed    ActivityStatus = "failed"
)

// ActivityStatuses lists every activity status, in the order messages name them.
var ActivityStatuses = []ActivityStatus{ActivityStarted, ActivityCompleted, ActivityFailed}

// Limits on what a caller may write into an activity row.
const (
	MaxActivityTitle    = 500
	MaxActivitySubtitle = 1000
)

// CheckActivityType says why t is not an activity type, or returns "". The
// reason reads as the end of a sentence: "type must be one of …".
func CheckActivityType(t ActivityType) string {
	for _, v := range ActivityTypes {
		if t == v {
			return ""
		}
	}
	return fmt.Sprintf("type must be one of download, generation, error (got %q)", t)
}

// CheckActivityStatus says why s is not an activity status, or returns "".
func CheckActivityStatus(s ActivityStatus) string {
	for _, v := range ActivityStatuses {
		if s == v {
			return ""
		}
	}
	return fmt.Sprintf("status must be one of started, completed, failed (got %q)", s)
}

// Activity is one row of the activity log, shaped as the API sends it.
type Activity struct {
	ID        int64           `json:"id"`
	Type      ActivityType    `json:"type"`
	Status    ActivityStatus  `json:"status"`
	Title     string          `json:"title"`
	Subtitle  string          `json:"subtitle"`
	Details   json.RawMessage `json:"details"` // nil is sent as null
	CreatedAt time.Time       `json:"created_at"`
}

// Check says why a cannot be recorded, or returns "" (the reason reads as
// the end of a sentence, "title is required"): the fields a caller controls
// are checked here, once, for every writer of the log.
func (a Activity) Check() string {
	if msg := CheckActivityType(a.Type); msg != "" {
		return msg
	}
	if msg := CheckActivityStatus(a.Status); msg != "" {
		return msg
	}
	if a.Title == "" {
		return "title is required"
	}
	if len(a.Title) > MaxActivityTitle || len(a.Subtitle) > MaxActivitySubtitle {
		return fmt.Sprintf("title is limited to %d bytes and subtitle to %d", MaxActivityTitle, MaxActivitySubtitle)
	}
	return ""
}

// ActivityFilter selects activity rows, newest first. Empty fields match all;
// Before > 0 returns only rows with a smaller id (keyset pagination).
type ActivityFilter struct {
	Type   ActivityType
	Status ActivityStatus
	Before int64
	Limit  int
}
