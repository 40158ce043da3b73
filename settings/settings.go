// Package settings holds the user's settings: the theme, the activity
// retention, browser notifications and the HuggingFace token. It validates changes, keeps the token
// out of everything that leaves the server, and announces every change so all
// open tabs follow.
package settings

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"dashboard/model"
)

// Store is the part of the database settings need.
type Store interface {
	Settings(ctx context.Context) (map[string]string, error)
	SetSettings(ctx context.Context, kv map[string]string) error
	DeleteSetting(ctx context.Context, key string) error
}

// Publisher sends an event to every live client.
type Publisher interface {
	Publish(typ string, data any)
}

// View is the Settings object of the API. It never holds the full token.
type View struct {
	Theme                 string `json:"theme"`
	ActivityRetentionDays int    `json:"activity_retention_days"`
	// Notifications: the browser shows a notification when a download ends
	// or a generation ends while the dashboard's tab is hidden.
	Notifications bool      `json:"notifications"`
	HFToken       TokenView `json:"hf_token"`
}

// TokenView describes the token in use without revealing it.
type TokenView struct {
	Set      bool    `json:"set"`
	Source   *string `json:"source"`
	Masked   *string `json:"masked"`
	Username *string `json:"username"`
}

// TokenCheck is the answer of a token test.
type TokenCheck struct {
	Valid    bool   `json:"valid"`
	Username string `json:"username,omitempty"`
	Role     string `json:"role,omitempty"`
	Message  string `json:"message,omitempty"`
}

// Patch is a change of the plain settings; nil fields stay as they are.
type Patch struct {
	Theme         *string
	RetentionDays *int
	Notifications *bool
}

// Config wires a Service.
type Config struct {
	Store      Store
	Publisher  Publisher
	Logger     *slog.Logger
	EnvToken   string // HF_TOKEN, used when no token is saved
	HFEndpoint string // base URL, e.g. https://huggingface.co
	HTTPClient *http.Client
}

// Service reads and changes settings.
type Service struct {
	cfg           Config
	shownEndpoint string // the endpoint as logs and messages may show it

	// envUser caches the username of the HF_TOKEN fallback once a test
	// has shown it; it is not stored because the env token is not ours.
	mu      sync.Mutex
	envUser string
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	// The token check never follows a redirect: Go's client would carry the
	// Authorization header to another port of the same host, from https to
	// http, or to a subdomain. whoami-v2 answers directly; a redirect means
	// a misconfigured endpoint, and the token stays where it was sent.
	noFollow := *cfg.HTTPClient
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cfg.HTTPClient = &noFollow
	cfg.HFEndpoint = strings.TrimRight(cfg.HFEndpoint, "/")
	shown := cfg.HFEndpoint
	if u, err := url.Parse(cfg.HFEndpoint); err == nil {
		shown = u.Redacted() // a mirror's user:password stays out of messages
	}
	return &Service{cfg: cfg, shownEndpoint: shown}
}

// Token returns the token downloads should use: the saved one, else HF_TOKEN,
// else "".
func (s *Service) Token(ctx context.Context) string {
	kv, err := s.cfg.Store.Settings(ctx)
	if err != nil {
		s.cfg.Logger.Warn("read token setting failed; using HF_TOKEN fallback", "err", err)
		return s.cfg.EnvToken
	}
	if t := kv[model.SettingHFToken]; t != "" {
		return t
	}
	return s.cfg.EnvToken
}

// RetentionDays returns the activity retention in days.
func (s *Service) RetentionDays(ctx context.Context) (int, error) {
	kv, err := s.cfg.Store.Settings(ctx)
	if err != nil {
		return 0, fmt.Errorf("read retention: %w", err)
	}
	return retention(kv), nil
}

func retention(kv map[string]string) int {
	n, err := strconv.Atoi(kv[model.SettingRetentionDays])
	if err != nil || !model.ValidRetentionDays(n) {
		return model.DefaultRetentionDays
	}
	return n
}

// View returns the current settings.
func (s *Service) View(ctx context.Context) (View, error) {
	kv, err := s.cfg.Store.Settings(ctx)
	if err != nil {
		return View{}, fmt.Errorf("read settings: %w", err)
	}
	v := View{Theme: kv[model.SettingTheme], ActivityRetentionDays: retention(kv), Notifications: model.DefaultNotifications}
	if n, err := strconv.ParseBool(kv[model.SettingNotifications]); err == nil {
		v.Notifications = n
	}
	if !model.ValidTheme(v.Theme) {
		v.Theme = model.DefaultTheme
	}
	token, source, user := kv[model.SettingHFToken], "db", kv[model.SettingHFUsername]
	if token == "" && s.cfg.EnvToken != "" {
		token, source = s.cfg.EnvToken, "env"
		s.mu.Lock()
		user = s.envUser
		s.mu.Unlock()
	}
	if token != "" {
		m := Mask(token)
		v.HFToken = TokenView{Set: true, Source: &source, Masked: &m}
		if user != "" {
			v.HFToken.Username = &user
		}
	}
	return v, nil
}

// Update applies p after checking every field; nothing is written when one is bad.
func (s *Service) Update(ctx context.Context, p Patch) (View, error) {
	kv := map[string]string{}
	if p.Theme != nil {
		if !model.ValidTheme(*p.Theme) {
			return View{}, model.Errorf(model.CodeInvalidSetting, "The theme must be %q or %q, not %q.", model.ThemeDark, model.ThemeLight, *p.Theme)
		}
		kv[model.SettingTheme] = *p.Theme
	}
	if p.RetentionDays != nil {
		d := *p.RetentionDays
		if !model.ValidRetentionDays(d) {
			return View{}, model.Errorf(model.CodeInvalidSetting, "activity_retention_days must be between %d and %d, not %d.", model.MinRetentionDays, model.MaxRetentionDays, d)
		}
		kv[model.SettingRetentionDays] = strconv.Itoa(d)
	}
	if p.Notifications != nil {
		kv[model.SettingNotifications] = strconv.FormatBool(*p.Notifications)
	}
	if len(kv) == 0 {
		return View{}, model.Errorf(model.CodeInvalidSetting, "Nothing to change: send theme, activity_retention_days or notifications.")
	}
	if err := s.cfg.Store.SetSettings(ctx, kv); err != nil {
		return View{}, fmt.Errorf("save settings: %w", err)
	}
	return s.changed(ctx)
}

// SaveToken checks token with HuggingFace and saves it only when HuggingFace
// accepts it.
func (s *Service) SaveToken(ctx context.Context, token string) (View, error) {
	token, err := cleanToken(token)
	if err != nil {
		return View{}, err
	}
	check, err := s.whoami(ctx, token)
	if err != nil {
		return View{}, err
	}
	if !check.Valid {
		return View{}, &model.Error{Code: model.CodeInvalidToken, Message: check.Message}
	}
	if err := s.cfg.Store.SetSettings(ctx, map[string]string{model.SettingHFToken: token, model.SettingHFUsername: check.Username}); err != nil {
		return View{}, fmt.Errorf("save token: %w", err)
	}
	s.cfg.Logger.Info("huggingface token saved", "username", check.Username)
	return s.changed(ctx)
}

// TestToken checks token, or the token in use when token is "".
func (s *Service) TestToken(ctx context.Context, token string) (TokenCheck, error) {
	usingCurrent := strings.TrimSpace(token) == ""
	if usingCurrent {
		token = s.Token(ctx)
		if token == "" {
			return TokenCheck{Valid: false, Message: "No HuggingFace token is set. Paste one to test it."}, nil
		}
	} else {
		var err error
		if token, err = cleanToken(token); err != nil {
			return TokenCheck{Valid: false, Message: err.Error()}, nil
		}
	}
	check, err := s.whoami(ctx, token)
	if err != nil {
		return TokenCheck{}, err
	}
	if usingCurrent && check.Valid && token == s.cfg.EnvToken {
		s.mu.Lock()
		s.envUser = check.Username
		s.mu.Unlock()
	}
	return check, nil
}

// DeleteToken forgets the saved token; HF_TOKEN may still apply.
func (s *Service) DeleteToken(ctx context.Context) (View, error) {
	for _, k := range []string{model.SettingHFToken, model.SettingHFUsername} {
		if err := s.cfg.Store.DeleteSetting(ctx, k); err != nil {
			return View{}, fmt.Errorf("delete token: %w", err)
		}
	}
	s.cfg.Logger.Info("huggingface token removed")
	return s.changed(ctx)
}

func (s *Service) changed(ctx context.Context) (View, error) {
	v, err := s.View(ctx)
	if err != nil {
		return View{}, err
	}
	s.cfg.Publisher.Publish(model.FrameSettings, v)
	return v, nil
}

// Mask shows enough of a token to recognise it: "hf_…wxyz".
func Mask(token string) string {
	if len(token) < 12 {
		return "…"
	}
	return token[:3] + "…" + token[len(token)-4:]
}

// cleanToken trims token and refuses what cannot be a token, with a
// model.CodeInvalidToken error.
func cleanToken(token string) (string, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return "", model.Errorf(model.CodeInvalidToken, "The token is empty: paste a HuggingFace access token (it starts with hf_).")
	}
	if len(token) > 256 {
		return "", model.Errorf(model.CodeInvalidToken, "That is too long to be a HuggingFace token.")
	}
	for _, r := range token {
		if r <= ' ' || r > '~' {
			return "", model.Errorf(model.CodeInvalidToken, "A HuggingFace token has no spaces or special characters: check what was pasted.")
		}
	}
	return token, nil
}

// whoami asks HuggingFace who token belongs to. A 401 is an invalid token;
// no answer, or any other status, is a model.CodeHFUnreachable error.
func (s *Service) whoami(ctx context.Context, token string) (TokenCheck, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.HFEndpoint+"/api/whoami-v2", nil)
	if err != nil {
		return TokenCheck{}, unreachable("the HuggingFace endpoint is not a valid URL")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		// The error names only the URL, never the header, but keep it short.
		s.cfg.Logger.Warn("huggingface whoami failed", "endpoint", s.shownEndpoint, "err", errors.Unwrap(err))
		return TokenCheck{}, unreachable("no answer from " + s.shownEndpoint)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		s.cfg.Logger.Warn("huggingface whoami answered with a redirect; not followed", "status", resp.StatusCode, "endpoint", s.shownEndpoint)
		return TokenCheck{}, unreachable(fmt.Sprintf("%s answered with a redirect (HTTP %d), which is not followed with a token; check HF_ENDPOINT", s.shownEndpoint, resp.StatusCode))
	case resp.StatusCode == http.StatusUnauthorized:
		return TokenCheck{Valid: false, Message: "HuggingFace does not accept this token: it is wrong, expired or revoked."}, nil
	case resp.StatusCode != http.StatusOK:
		s.cfg.Logger.Warn("huggingface whoami answered an error", "status", resp.StatusCode)
		return TokenCheck{}, unreachable(fmt.Sprintf("HuggingFace answered HTTP %d", resp.StatusCode))
	}
	var who struct {
		Name string `json:"name"`
		Auth struct {
			AccessToken struct {
				Role string `json:"role"`
			} `json:"accessToken"`
		} `json:"auth"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(&who); err != nil || who.Name == "" {
		return TokenCheck{}, unreachable("HuggingFace sent an answer that could not be read")
	}
	return TokenCheck{Valid: true, Username: who.Name, Role: who.Auth.AccessToken.Role}, nil
}

// unreachable says HuggingFace could not be asked about a token, and why.
func unreachable(why string) *model.Error {
	return model.Errorf(model.CodeHFUnreachable, "Could not reach HuggingFace to check the token (%s). Nothing was saved; try again in a moment.", why)
}
