package identity

// WithoutWatch turns Files' file watching off, so that a test sees what
// the timer alone does.
func WithoutWatch() Option { return func(o *options) { o.watch = false } }
