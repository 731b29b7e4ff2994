// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

func benchGetRequest(b *testing.B, e *env) []byte {
	c := e.dial(e.client)
	id := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).MustExec().UniqueIdentifier
	return ttlv.MarshalTTLV(request(kmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: id}))
}

func benchCreateRequest() []byte {
	return ttlv.MarshalTTLV(request(kmip.V1_4, &payloads.CreateRequestPayload{
		ObjectType: kmip.ObjectTypeSymmetricKey,
		TemplateAttribute: kmip.TemplateAttribute{Attribute: []kmip.Attribute{
			{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmAES},
			{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(256)},
			{AttributeName: kmip.AttributeNameCryptographicUsageMask, AttributeValue: kmip.CryptographicUsageEncrypt | kmip.CryptographicUsageDecrypt},
		}},
	}))
}

// benchOneConn sends req over one connection b.N times.
func benchOneConn(b *testing.B, e *env, req []byte) {
	c := e.raw(e.client)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp := readMessage(b, c)
		if len(resp) < 100 {
			b.Fatalf("short response %x", resp)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// benchNewConn opens a TLS connection per request, as vCenter does.
func benchNewConn(b *testing.B, e *env, req []byte) {
	conf := e.tlsConfig(&e.client)
	conf.ClientSessionCache = nil
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c, err := tls.Dial("tcp", e.addr, conf)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		readMessage(b, c)
		c.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkGet(b *testing.B) {
	b.Run("OneConnection", func(b *testing.B) {
		e := newEnv(b)
		benchOneConn(b, e, benchGetRequest(b, e))
	})
	b.Run("NewConnections", func(b *testing.B) {
		e := newEnv(b)
		benchNewConn(b, e, benchGetRequest(b, e))
	})
}

func BenchmarkCreate(b *testing.B) {
	b.Run("OneConnection", func(b *testing.B) {
		benchOneConn(b, newEnv(b), benchCreateRequest())
	})
	b.Run("NewConnections", func(b *testing.B) {
		benchNewConn(b, newEnv(b), benchCreateRequest())
	})
}

// BenchmarkHandleMessage measures the message path without TLS.
func BenchmarkHandleMessage(b *testing.B) {
	e := newEnv(b)
	req := benchGetRequest(b, e)
	ctx := sessionContext(e)
	b.ReportAllocs()
	b.ResetTimer()
	sess := sessionOf(ctx)
	for range b.N {
		e.srv.handleMessage(ctx, req)
		sess.wipe = sess.wipe[:0]
	}
}

// BenchmarkGetEightConnections sends Get over 8 persistent connections
// at once and reports the total rate.
func BenchmarkGetEightConnections(b *testing.B) {
	e := newEnv(b)
	req := benchGetRequest(b, e)
	conns := make(chan *tls.Conn, 8)
	for range 8 {
		c := e.raw(e.client)
		c.SetDeadline(time.Time{})
		conns <- c
	}
	b.SetParallelism(4) // 2 cores × 4 = 8 goroutines
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := <-conns
		defer func() { conns <- c }()
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			if resp := readMessage(b, c); len(resp) < 100 {
				b.Errorf("short response %x", resp)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
