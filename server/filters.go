package server

// The HTTP filters built into meshgate register themselves by name and
// config type (httpfilter.Register) when their packages load. A custom
// build adds its own the same way: a main that imports meshgate's command
// and the filter's package.
import (
	_ "github.com/meshgate/meshgate/server/filters/buffer"
	_ "github.com/meshgate/meshgate/server/filters/connect"
	_ "github.com/meshgate/meshgate/server/filters/cors"
	_ "github.com/meshgate/meshgate/server/filters/dubbo"
	_ "github.com/meshgate/meshgate/server/filters/fault"
	_ "github.com/meshgate/meshgate/server/filters/grpcweb"
	_ "github.com/meshgate/meshgate/server/filters/headermutation"
	_ "github.com/meshgate/meshgate/server/filters/jwtauthn"
	_ "github.com/meshgate/meshgate/server/filters/localratelimit"
	_ "github.com/meshgate/meshgate/server/filters/rbac"
	_ "github.com/meshgate/meshgate/server/filters/transcoder"
)
