package metrics

import (
	"crypto/x509"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Certificate kinds, the "kind" label of the certificate series.
const (
	// CertEndEntity is this side's own certificate.
	CertEndEntity = "end_entity"
	// CertIntermediate is an intermediate CA certificate, sent above it or
	// used to complete a peer's chain.
	CertIntermediate = "intermediate"
	// CertCA is a trust anchor peers' chains must end in.
	CertCA = "ca"
)

// Certificate is one loaded certificate and where it is used.
type Certificate struct {
	Cert *x509.Certificate
	// Kind is CertEndEntity, CertIntermediate or CertCA.
	Kind string
	// Connections name the connections whose authentication uses it.
	Connections []string
}

var descCertExpiry = prometheus.NewDesc("iked_certificate_expiry_timestamp_seconds",
	"When a loaded certificate expires (its notAfter, Unix time): own certificates, intermediates and CAs.",
	[]string{"kind", "subject", "issuer", "serial"}, nil)

type certCollector struct{ certs func() []Certificate }

// NewCertificateCollector exports the expiry of every certificate certs
// returns (called on each scrape: a reload's certificates show at once).
// A certificate listed twice (two connections, or as CA and intermediate)
// is exported once, with the first kind it was listed with.
func NewCertificateCollector(certs func() []Certificate) prometheus.Collector {
	return certCollector{certs: certs}
}

// Describe implements prometheus.Collector.
func (certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descCertExpiry }

// Collect implements prometheus.Collector.
func (c certCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[string]bool{}
	for _, ce := range c.certs() {
		if ce.Cert == nil {
			continue
		}
		subject, issuer, serial := ce.Cert.Subject.String(), ce.Cert.Issuer.String(), SerialString(ce.Cert)
		key := subject + "\x00" + issuer + "\x00" + serial
		if seen[key] {
			continue
		}
		seen[key] = true
		ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(ce.Cert.NotAfter.Unix()),
			ce.Kind, subject, issuer, serial)
	}
}

// SerialString is a certificate's serial number as colon-separated hex
// octets, as openssl x509 -serial and swanctl --list-certs print it.
func SerialString(c *x509.Certificate) string {
	if c.SerialNumber == nil {
		return ""
	}
	b := c.SerialNumber.Bytes()
	if len(b) == 0 {
		return "00"
	}
	const digits = "0123456789abcdef"
	var sb strings.Builder
	for i, x := range b {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteByte(digits[x>>4])
		sb.WriteByte(digits[x&0xf])
	}
	return sb.String()
}
