package main

// Istio's CA and istiod's secure port (15012 in a real istiod): a TLS gRPC
// server with the CA's IstioCertificateService and the discovery server's
// ADS, authenticated as a real istiod does (client certificates signed by
// the mesh root, then Kubernetes service-account tokens checked with a
// TokenReview against the fake cluster).

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	kubesecrets "istio.io/istio/pilot/pkg/credentials/kube"
	istiogrpc "istio.io/istio/pilot/pkg/grpc"
	"istio.io/istio/pilot/pkg/model"
	xdsfake "istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config/constants"
	"istio.io/istio/pkg/config/schema/kind"
	istiokeepalive "istio.io/istio/pkg/keepalive"
	kubelib "istio.io/istio/pkg/kube"
	"istio.io/istio/pkg/kube/controllers"
	"istio.io/istio/pkg/kube/kclient"
	"istio.io/istio/pkg/security"
	"istio.io/istio/pkg/util/sets"
	xdspkg "istio.io/istio/pkg/xds"
	"istio.io/istio/security/pkg/cmd"
	"istio.io/istio/security/pkg/pki/ca"
	caserver "istio.io/istio/security/pkg/server/ca"
	"istio.io/istio/security/pkg/server/ca/authenticate"
	"istio.io/istio/security/pkg/server/ca/authenticate/kubeauth"
)

// newCA makes Istio's CA. Without a signing key in caDir it is a fresh
// self-signed root (as istiod without a cacerts secret makes it), and its
// certificate and key are then written to caDir as ca-cert.pem and
// ca-key.pem (the files of Istio's cacerts secret), with root-cert.pem, so
// that an istiod restarted on the same caDir keeps the mesh root (a real
// istiod keeps it in its istio-ca-secret).
func newCA(caDir string, certTTL, maxTTL time.Duration, trustDomain string) (*ca.IstioCA, error) {
	file := func(name string) string { return filepath.Join(caDir, name) }
	var caOpts *ca.IstioCAOptions
	var err error
	_, errCert := os.Stat(file(caCertFile))
	_, errKey := os.Stat(file(caKeyFile))
	plugged := caDir != "" && errCert == nil && errKey == nil
	if plugged {
		caOpts, err = ca.NewPluggedCertIstioCAOptions(ca.SigningCAFileBundle{
			RootCertFile:    file(caCertFile),
			SigningCertFile: file(caCertFile),
			SigningKeyFile:  file(caKeyFile),
		}, certTTL, maxTTL, 2048)
	} else {
		caOpts, err = ca.NewSelfSignedDebugIstioCAOptions("", cmd.DefaultSelfSignedCACertTTL, certTTL, maxTTL, trustDomain, 2048)
	}
	if err != nil {
		return nil, err
	}
	istioCA, err := ca.NewIstioCA(caOpts)
	if err != nil {
		return nil, err
	}
	if caDir == "" {
		return istioCA, nil
	}
	certPEM, keyPEM, _, rootPEM := istioCA.GetCAKeyCertBundle().GetAllPem()
	if err := os.MkdirAll(caDir, 0o755); err != nil {
		return nil, err
	}
	if !plugged {
		if err := os.WriteFile(file(caCertFile), certPEM, 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(file(caKeyFile), keyPEM, 0o600); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(file(constants.CACertNamespaceConfigMapDataName), rootPEM, 0o644); err != nil {
		return nil, err
	}
	return istioCA, nil
}

// The files of Istio's cacerts secret.
const (
	caCertFile = "ca-cert.pem"
	caKeyFile  = "ca-key.pem"
)

// istiodSANs are the DNS names of istiod's serving certificate, as a real
// istiod in istio-system has them (bootstrap getDNSNames).
var istiodSANs = []string{"istio-pilot.istio-system.svc", "istiod-remote.istio-system.svc", "istiod.istio-system.svc"}

// tokens are the service-account tokens the harness minted; the fake
// cluster's TokenReview accepts exactly these.
// With a file, they are kept there too, so that a restarted istiod on the
// same -ca-dir still accepts them (the kube-apiserver outlives istiod).
type tokens struct {
	mu   sync.Mutex
	m    map[string]identity
	file string
}

// load reads the tokens kept in file ("token namespace serviceAccount" lines).
func (t *tokens) load(file string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.file = file
	b, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		return err
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) == 3 {
			t.m[f[0]] = identity{f[1], f[2]}
		}
	}
	return nil
}

type identity struct{ namespace, serviceAccount string }

// mint returns a new token for ns/sa. It is shaped like a Kubernetes
// projected service-account token (a JWT with the usual claims, audience
// istio-ca) but its signature is random: only the TokenReview checks it.
func (t *tokens) mint(ns, sa string) string {
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT"})
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{
		"iss": "https://kubernetes.default.svc.cluster.local",
		"sub": "system:serviceaccount:" + ns + ":" + sa,
		"aud": security.TokenAudiences,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(24 * time.Hour).Unix(),
		"kubernetes.io": map[string]any{
			"namespace":      ns,
			"serviceaccount": map[string]string{"name": sa},
		},
	})
	sig := make([]byte, 32)
	_, _ = rand.Read(sig)
	tok := enc.EncodeToString(header) + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString(sig)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[tok] = identity{ns, sa}
	if t.file != "" {
		f, err := os.OpenFile(t.file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err == nil {
			_, err = fmt.Fprintf(f, "%s %s %s\n", tok, ns, sa)
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			log.Printf("keep token: %v", err)
		}
	}
	return tok
}

// tokenReview is the kube-apiserver's TokenReview for the fake clientset.
func (t *tokens) tokenReview(action k8stesting.Action) (bool, runtime.Object, error) {
	req := action.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview)
	out := req.DeepCopy()
	t.mu.Lock()
	id, ok := t.m[req.Spec.Token]
	t.mu.Unlock()
	if !ok {
		out.Status = authnv1.TokenReviewStatus{Authenticated: false, Error: "invalid bearer token"}
		return true, out, nil
	}
	out.Status = authnv1.TokenReviewStatus{
		Authenticated: true,
		User: authnv1.UserInfo{
			Username: "system:serviceaccount:" + id.namespace + ":" + id.serviceAccount,
			UID:      "uid-" + id.namespace + "-" + id.serviceAccount,
			Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + id.namespace, "system:authenticated"},
		},
		Audiences: req.Spec.Audiences,
	}
	return true, out, nil
}

// kubeClientModifier installs the TokenReview reactor on the fake cluster.
func (t *tokens) kubeClientModifier(c kubelib.Client) {
	c.Kube().(*fake.Clientset).PrependReactor("create", "tokenreviews", t.tokenReview)
}

type secureOptions struct {
	addr       string
	caDir      string
	certTTL    time.Duration
	maxCertTTL time.Duration
}

// secureServer is Istio's CA plus istiod's secure gRPC port.
type secureServer struct {
	lis     net.Listener
	rootPEM []byte
}

// startSecure creates the CA (an in-memory self-signed root, as istiod
// without a cacerts secret and without Kubernetes makes it), gives the
// discovery server the authenticators of a real istiod and serves the CA
// and ADS over TLS on opts.addr.
func startSecure(s *xdsfake.FakeDiscoveryServer, opts secureOptions) (*secureServer, error) {
	maxTTL := max(opts.maxCertTTL, opts.certTTL)
	istioCA, err := newCA(opts.caDir, opts.certTTL, maxTTL, s.Discovery.Env.Mesh().GetTrustDomain())
	if err != nil {
		return nil, err
	}
	rootPEM := istioCA.GetCAKeyCertBundle().GetRootCertPem()

	// istiod's own serving certificate, signed by the mesh root. Not tied
	// to the workload TTL, so that short workload TTLs do not expire it.
	certPEM, keyPEM, err := istioCA.GenKeyCert(istiodSANs, 365*24*time.Hour, false)
	if err != nil {
		return nil, err
	}
	serving, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		return nil, fmt.Errorf("bad mesh root")
	}

	// Authenticators in the order a real istiod has them (bootstrap
	// NewServer): client certificate, then the Kubernetes JWT.
	authenticators := []security.Authenticator{
		&authenticate.ClientCertAuthenticator{},
		kubeauth.NewKubeJWTAuthenticator(s.Discovery.Env, s.KubeClient().Kube(), constants.DefaultClusterName, nil, nil),
	}
	s.Discovery.Authenticators = authenticators
	caSrv, err := caserver.New(istioCA, maxTTL, authenticators, nil)
	if err != nil {
		return nil, err
	}

	cfg := &tls.Config{
		Certificates: []tls.Certificate{serving},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    roots,
		MinVersion:   tls.VersionTLS12,
	}
	grpcOpts := istiogrpc.ServerOptions(istiokeepalive.DefaultOption(), xdspkg.RecordRecvSize)
	grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(cfg)))
	gs := grpc.NewServer(grpcOpts...)
	s.Discovery.Register(gs)
	caSrv.Register(gs)

	lis, err := net.Listen("tcp", opts.addr)
	if err != nil {
		return nil, err
	}
	go func() { _ = gs.Serve(lis) }()
	return &secureServer{lis: lis, rootPEM: rootPEM}, nil
}

// watchSecrets pushes Secret changes of the fake cluster to the proxies,
// as a real istiod's credentials controller handler does (the fake
// discovery server does not).
func watchSecrets(s *xdsfake.FakeDiscoveryServer, stop <-chan struct{}) kclient.Client[*corev1.Secret] {
	kc := s.KubeClient()
	secrets := kclient.NewFiltered[*corev1.Secret](kc, kclient.Filter{
		FieldSelector: kubesecrets.SecretsFieldSelector,
		ObjectFilter:  kc.ObjectFilter(),
	})
	secrets.AddEventHandler(controllers.ObjectHandler(func(o controllers.Object) {
		s.Discovery.ConfigUpdate(&model.PushRequest{
			ConfigsUpdated: sets.New(model.ConfigKey{Kind: kind.Secret, Name: o.GetName(), Namespace: o.GetNamespace()}),
			Reason:         model.NewReasonStats(model.SecretTrigger),
		})
	}))
	kc.RunAndWait(stop)
	return secrets
}

type secretRequest struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Cert      string `json:"cert"`
	Key       string `json:"key"`
	CA        string `json:"ca"`
}

// putSecret creates or updates a kubernetes.io/tls Secret and waits until
// istiod's secret informer has it (its handler then pushes it).
func putSecret(ctx context.Context, s *xdsfake.FakeDiscoveryServer, informer kclient.Client[*corev1.Secret], r secretRequest) error {
	if r.Namespace == "" || r.Name == "" || r.Cert == "" || r.Key == "" {
		return fmt.Errorf("namespace, name, cert and key are required")
	}
	data := map[string][]byte{
		corev1.TLSCertKey:       []byte(r.Cert),
		corev1.TLSPrivateKeyKey: []byte(r.Key),
	}
	if r.CA != "" {
		data["ca.crt"] = []byte(r.CA)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: r.Name, Namespace: r.Namespace},
		Type:       corev1.SecretTypeTLS,
		Data:       data,
	}
	api := s.KubeClient().Kube().CoreV1().Secrets(r.Namespace)
	if _, err := api.Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return err
		}
		if _, err := api.Update(ctx, secret, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got := informer.Get(r.Name, r.Namespace); got != nil && maps.EqualFunc(got.Data, data, bytes.Equal) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("secret %s/%s not seen by istiod's informer", r.Namespace, r.Name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// secureHandlers adds POST /token and POST /secret to the control mux.
func secureHandlers(mux *http.ServeMux, s *xdsfake.FakeDiscoveryServer, toks *tokens, informer kclient.Client[*corev1.Secret]) {
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Namespace      string `json:"namespace"`
			ServiceAccount string `json:"serviceAccount"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if req.Namespace == "" || req.ServiceAccount == "" {
			http.Error(w, "namespace and serviceAccount are required", 400)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(toks.mint(req.Namespace, req.ServiceAccount)))
	})
	mux.HandleFunc("POST /secret", func(w http.ResponseWriter, r *http.Request) {
		var req secretRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if err := putSecret(r.Context(), s, informer, req); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintln(w, "ok")
	})
}
