package announce

import "context"

// Mode says which registrations are written (Dubbo's register-mode).
type Mode int

const (
	// All writes both models, Dubbo 3's default for a provider that
	// consumers of either generation call.
	All Mode = iota
	Interface
	Instance
)

func (m Mode) interfaceLevel() bool { return m == All || m == Interface }
func (m Mode) instanceLevel() bool  { return m == All || m == Instance }

// Registrar writes a provider's registration into one registry.
type Registrar interface {
	// Name says which registry, for logs.
	Name() string
	// Register writes what is missing or changed of the registration;
	// called again while the provider stays up, it repairs what the
	// registry lost (an expired session's ephemeral nodes).
	Register(ctx context.Context, p *Provider, m *MetadataInfo, mode Mode) error
	// Deregister withdraws the provider (what consumers discover it by);
	// the mapping and the service definitions stay, as Dubbo leaves them.
	Deregister(ctx context.Context) error
	Close()
}
