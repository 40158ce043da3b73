package comfyui

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"dashboard/model"
)

// Limits that keep an activity row small and within what the activity log
// accepts (title 500 bytes, subtitle 1000).
const (
	maxSubtitleMessage = 300  // error text shown in a subtitle
	maxDetailMessage   = 4000 // error text kept in details
	maxDetailFiles     = 100  // files listed in details; the counts stay exact
)

// interruptedByRestart is the error of a prompt that vanished from ComfyUI's
// queue without reaching its history: ComfyUI stopped while it ran.
const interruptedByRestart = "interrupted: ComfyUI restarted"

// label is what a generation is called in a subtitle.
func label(name, promptID string) string {
	if name != "" {
		return name
	}
	return promptID
}

type startedDetails struct {
	PromptID string `json:"prompt_id"`
	Workflow string `json:"workflow,omitempty"`
}

func startedActivity(promptID, name string) model.Activity {
	return model.Activity{
		Type:     model.ActivityGeneration,
		Status:   model.ActivityStarted,
		Title:    "Generation started",
		Subtitle: label(name, promptID),
		Details:  mustJSON(startedDetails{PromptID: promptID, Workflow: name}),
	}
}

type finishedDetails struct {
	PromptID         string       `json:"prompt_id"`
	Workflow         string       `json:"workflow,omitempty"`
	Images           int          `json:"images"`
	Videos           int          `json:"videos"`
	Audio            int          `json:"audio"`
	Outputs          []outputFile `json:"outputs"`
	OutputsTruncated bool         `json:"outputs_truncated,omitempty"`
	DurationSeconds  *float64     `json:"duration_seconds,omitempty"`
}

type failedDetails struct {
	PromptID        string   `json:"prompt_id"`
	Workflow        string   `json:"workflow,omitempty"`
	Error           string   `json:"error"`
	ExceptionType   string   `json:"exception_type,omitempty"`
	NodeType        string   `json:"node_type,omitempty"`
	NodeID          string   `json:"node_id,omitempty"`
	DurationSeconds *float64 `json:"duration_seconds,omitempty"`
}

// finishedActivity turns a history entry into its completed or failed
// activity. observed is how long the watcher saw the prompt run, used when
// ComfyUI's messages carry no timestamps (0: unknown).
func finishedActivity(e historyEntry, name string, observed time.Duration) model.Activity {
	dur := duration(e, observed)
	if e.Outcome == outcomeSuccess {
		return completedActivity(e, name, dur)
	}
	msg := strings.TrimSpace(e.Message)
	title := "Generation failed"
	if e.Outcome == outcomeInterrupted {
		// Someone pressed cancel; calling that a failure would mislead.
		title = "Generation interrupted"
		if msg == "" {
			msg = "interrupted"
		}
	}
	if msg == "" {
		msg = e.ExceptionType
	}
	if msg == "" {
		msg = "unknown error"
	}
	return model.Activity{
		Type:     model.ActivityGeneration,
		Status:   model.ActivityFailed,
		Title:    title,
		Subtitle: label(name, e.ID) + ": " + clean(msg, maxSubtitleMessage),
		Details: mustJSON(failedDetails{
			PromptID: e.ID, Workflow: name, Error: truncate(msg, maxDetailMessage),
			ExceptionType: e.ExceptionType, NodeType: e.NodeType, NodeID: e.NodeID,
			DurationSeconds: dur,
		}),
	}
}

func completedActivity(e historyEntry, name string, dur *float64) model.Activity {
	d := finishedDetails{PromptID: e.ID, Workflow: name, DurationSeconds: dur, Outputs: []outputFile{}}
	for _, f := range e.Files {
		// Previews (type "temp") are shown in ComfyUI but not saved: they are
		// listed, not counted as generated.
		if f.Type != "temp" {
			switch f.Kind {
			case kindImage:
				d.Images++
			case kindVideo:
				d.Videos++
			case kindAudio:
				d.Audio++
			}
		}
		if len(d.Outputs) < maxDetailFiles {
			d.Outputs = append(d.Outputs, f)
		} else {
			d.OutputsTruncated = true
		}
	}
	return model.Activity{
		Type:     model.ActivityGeneration,
		Status:   model.ActivityCompleted,
		Title:    completedTitle(d.Images, d.Videos, d.Audio),
		Subtitle: label(name, e.ID),
		Details:  mustJSON(d),
	}
}

// completedTitle says what a prompt produced: "4 images generated",
// "2 images and 1 video generated".
func completedTitle(images, videos, audio int) string {
	var parts []string
	for _, c := range []struct {
		n           int
		one, plural string
	}{{images, "image", "images"}, {videos, "video", "videos"}, {audio, "audio file", "audio files"}} {
		switch {
		case c.n == 1:
			parts = append(parts, "1 "+c.one)
		case c.n > 1:
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.plural))
		}
	}
	switch len(parts) {
	case 0:
		return "Generation finished (no outputs)"
	case 1:
		return parts[0] + " generated"
	default:
		return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1] + " generated"
	}
}

// duration prefers ComfyUI's own timestamps; the watcher's observation is
// coarser (poll interval) but better than nothing.
func duration(e historyEntry, observed time.Duration) *float64 {
	var s float64
	switch {
	case e.StartMS > 0 && e.EndMS >= e.StartMS:
		s = float64(e.EndMS-e.StartMS) / 1000
	case observed > 0:
		s = math.Round(observed.Seconds()*1000) / 1000
	default:
		return nil
	}
	return &s
}

func interruptedActivity(promptID, name string, observed time.Duration) model.Activity {
	var dur *float64
	if observed > 0 {
		s := math.Round(observed.Seconds()*1000) / 1000
		dur = &s
	}
	return model.Activity{
		Type:     model.ActivityGeneration,
		Status:   model.ActivityFailed,
		Title:    "Generation failed",
		Subtitle: label(name, promptID) + ": " + interruptedByRestart,
		Details:  mustJSON(failedDetails{PromptID: promptID, Workflow: name, Error: interruptedByRestart, DurationSeconds: dur}),
	}
}

type unreachableDetails struct {
	URL   string `json:"url"`
	Error string `json:"error"`
}

func unreachableActivity(url string, err error) model.Activity {
	return model.Activity{
		Type:     model.ActivityError,
		Status:   model.ActivityFailed,
		Title:    "ComfyUI is unreachable",
		Subtitle: url,
		Details:  mustJSON(unreachableDetails{URL: url, Error: truncate(err.Error(), maxDetailMessage)}),
	}
}

// mustJSON marshals the watcher's own detail structs, which cannot fail.
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal activity details: %v", err))
	}
	return b
}
