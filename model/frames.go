package model

// Names of the WebSocket frames the dashboard publishes: {"type": name, "data": …}.
// The hub's own first frame, "snapshot", is named by the hub.
const (
	FrameDownload        = "download"
	FrameActivity        = "activity"
	FrameActivityCleared = "activity_cleared"
	FrameSettings        = "settings"
	FramePresets         = "presets"
	FrameMode            = "mode"
	FrameSystem          = "system"
)
