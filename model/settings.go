package model

// Keys of the settings table.
const (
	SettingTheme         = "theme"
	SettingRetentionDays = "activity_retention_days"
	SettingNotifications = "notifications"
	SettingHFToken       = "hf_token"
	SettingHFUsername    = "hf_username"
	SettingSessionKey    = "session_key"

	// The Civitai token and the username Civitai gave for it.
	SettingCivitaiToken    = "civitai_token"
	SettingCivitaiUsername = "civitai_username"
)

// Themes the UI has.
const (
	ThemeDark  = "dark"
	ThemeLight = "light"
)

// Defaults a new database starts with, and the range of the retention.
// Notifications start off: the browser asks for permission only when the
// user turns them on.
const (
	DefaultTheme         = ThemeDark
	DefaultRetentionDays = 30
	DefaultNotifications = false
	MinRetentionDays     = 1
	MaxRetentionDays     = 3650
)

// ValidTheme reports whether t is a theme the UI has.
func ValidTheme(t string) bool { return t == ThemeDark || t == ThemeLight }

// ValidRetentionDays reports whether d is within the retention's range.
func ValidRetentionDays(d int) bool { return d >= MinRetentionDays && d <= MaxRetentionDays }
