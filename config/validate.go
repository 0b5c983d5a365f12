package config

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
)

// Validate checks one resource against the constraints Envoy declares on its
// fields (protoc-gen-validate rules shipped with go-control-plane). The
// error names the field and the rule it breaks.
func Validate(m proto.Message) error {
	name, err := ResourceName(m)
	if err != nil {
		return err
	}
	if name == "" {
		return errors.New("name: must not be empty")
	}
	v, ok := m.(interface{ ValidateAll() error })
	if !ok {
		return nil
	}
	if err := v.ValidateAll(); err != nil {
		return fmt.Errorf("invalid: %w", err)
	}
	return nil
}
