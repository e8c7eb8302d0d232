package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flashsale/flashsale/platform/rpc"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
)

func TestPanicsAnswerInternalWithoutDetails(t *testing.T) {
	cc, err := rpc.Dial("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	g, err := New(Options{
		Product:   productv1.NewProductServiceClient(cc),
		Order:     orderv1.NewOrderServiceClient(cc),
		JWTSecret: []byte("0123456789abcdef0123456789abcdef"),
	})
	if err != nil {
		t.Fatal(err)
	}
	g.route("GET /panic", routeSpec{access: public}, func(http.ResponseWriter, *http.Request) error {
		panic("secret: database password is hunter2")
	})
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/panic", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	body := rec.Body.String()
	if !strings.Contains(body, `"code":"INTERNAL"`) || strings.Contains(body, "hunter2") {
		t.Fatalf("body = %s, want INTERNAL without the panic's text", body)
	}
	// The server goes on serving.
	rec = httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("after a panic /healthz = %d", rec.Code)
	}
}
