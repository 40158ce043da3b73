package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"dashboard/model"
)

// KeyStore is where the session signing key is kept.
type KeyStore interface {
	Setting(ctx context.Context, key string) (value string, ok bool, err error)
	SetSettings(ctx context.Context, kv map[string]string) error
}

// SessionKey returns the key that signs session cookies, made once and kept
// in the database so logins survive restarts.
func SessionKey(ctx context.Context, store KeyStore) ([]byte, error) {
	v, ok, err := store.Setting(ctx, model.SettingSessionKey)
	if err != nil {
		return nil, fmt.Errorf("read session key: %w", err)
	}
	if b, err := hex.DecodeString(v); ok && err == nil && len(b) == 32 {
		return b, nil
	}
	return NewSessionKey(ctx, store)
}

// NewSessionKey makes and saves a new signing key.
func NewSessionKey(ctx context.Context, store KeyStore) ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("make session key: %w", err)
	}
	if err := store.SetSettings(ctx, map[string]string{model.SettingSessionKey: hex.EncodeToString(b)}); err != nil {
		return nil, fmt.Errorf("save session key: %w", err)
	}
	return b, nil
}
