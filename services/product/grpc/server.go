// Package grpc adapts the catalog to gRPC: the ProductService server and
// the client of the inventory service.
package grpc

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/sweep"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
	"github.com/flashsale/flashsale/services/product"
)

// Errors maps the catalog's domain errors to API error codes; give it to
// rpc.NewServer.
var Errors = errcode.Table{
	{Err: product.ErrInvalid, Code: errcode.InvalidArgument},
	{Err: product.ErrNotFound, Code: errcode.NotFound},
	{Err: product.ErrInsufficientStock, Code: errcode.Conflict},
	{Err: product.ErrGivenUp, Code: errcode.Conflict},
	{Err: product.ErrSoldOut, Code: errcode.SoldOut},
	{Err: product.ErrUnavailable, Code: errcode.Unavailable},
}

// Server implements productv1.ProductServiceServer on the service. Its
// handlers return domain errors; the rpc server maps them through Errors.
type Server struct {
	productv1.UnimplementedProductServiceServer
	svc *product.Service
}

// NewServer returns a server for svc.
func NewServer(svc *product.Service) *Server { return &Server{svc: svc} }

// CreateProduct creates a product.
func (s *Server) CreateProduct(ctx context.Context, req *productv1.CreateProductRequest) (*productv1.Product, error) {
	p, err := s.svc.CreateProduct(ctx, product.Product{Title: req.GetTitle(), Price: req.GetPrice(), Stock: req.GetStock()})
	if err != nil {
		return nil, err
	}
	return productToProto(p), nil
}

// GetProduct returns a product.
func (s *Server) GetProduct(ctx context.Context, req *productv1.GetProductRequest) (*productv1.Product, error) {
	p, err := s.svc.GetProduct(ctx, req.GetSkuId())
	if err != nil {
		return nil, err
	}
	return productToProto(p), nil
}

// CreateActivity creates an activity and preheats its stock.
func (s *Server) CreateActivity(ctx context.Context, req *productv1.CreateActivityRequest) (*productv1.Activity, error) {
	a, err := s.svc.CreateActivity(ctx, product.Activity{
		SKUID:             req.GetSkuId(),
		Price:             req.GetPrice(),
		Stock:             req.GetStock(),
		PerUserLimit:      req.GetPerUserLimit(),
		StartsAt:          timeFromProto(req.GetStartsAt()),
		EndsAt:            timeFromProto(req.GetEndsAt()),
		ChallengeRequired: req.GetChallengeRequired(),
		StockBuckets:      int(req.GetStockBuckets()),
	})
	if err != nil {
		return nil, err
	}
	return s.activityToProto(a), nil
}

// GetActivity returns an activity with its remaining stock and status.
func (s *Server) GetActivity(ctx context.Context, req *productv1.GetActivityRequest) (*productv1.Activity, error) {
	a, err := s.svc.GetActivity(ctx, req.GetActivityId())
	if err != nil {
		return nil, err
	}
	return s.activityToProto(a), nil
}

// ListActivities returns the listed activities ordered by start time.
func (s *Server) ListActivities(ctx context.Context, _ *productv1.ListActivitiesRequest) (*productv1.ListActivitiesResponse, error) {
	list, err := s.svc.ListActivities(ctx)
	if err != nil {
		return nil, err
	}
	resp := &productv1.ListActivitiesResponse{Activities: make([]*productv1.Activity, len(list))}
	for i, a := range list {
		resp.Activities[i] = s.activityToProto(a)
	}
	return resp, nil
}

// ReserveStock takes a regular order's stock.
func (s *Server) ReserveStock(ctx context.Context, req *productv1.ReserveStockRequest) (*productv1.ReserveStockResponse, error) {
	lines := make([]product.StockLine, len(req.GetLines()))
	for i, l := range req.GetLines() {
		lines[i] = product.StockLine{SKUID: l.GetSkuId(), Quantity: l.GetQuantity()}
	}
	replayed, err := s.svc.ReserveStock(ctx, req.GetOrderId(), lines)
	if err != nil {
		return nil, err
	}
	return &productv1.ReserveStockResponse{Replayed: replayed}, nil
}

// ReleaseStock gives back a regular order's stock.
func (s *Server) ReleaseStock(ctx context.Context, req *productv1.ReleaseStockRequest) (*productv1.ReleaseStockResponse, error) {
	released, err := s.svc.ReleaseStock(ctx, req.GetOrderId())
	if err != nil {
		return nil, err
	}
	return &productv1.ReleaseStockResponse{Released: released}, nil
}

// ListHeldStock pages the orders that hold regular stock.
func (s *Server) ListHeldStock(ctx context.Context, req *productv1.ListHeldStockRequest) (*productv1.ListHeldStockResponse, error) {
	q := sweep.AgedQuery{
		OlderThan: req.GetOlderThan().AsDuration(), YoungerThan: req.GetYoungerThan().AsDuration(),
		After: sweep.TimeKey{ID: req.GetAfterOrderId()}, Limit: int(req.GetLimit()),
	}
	if req.GetAfterReservedAt() != nil {
		q.After.At = req.GetAfterReservedAt().AsTime()
	}
	held, err := s.svc.ListHeldStock(ctx, q)
	if err != nil {
		return nil, err
	}
	resp := &productv1.ListHeldStockResponse{Held: make([]*productv1.HeldStock, len(held))}
	for i, h := range held {
		resp.Held[i] = &productv1.HeldStock{OrderId: h.OrderID, ReservedAt: timestamppb.New(h.ReservedAt)}
	}
	return resp, nil
}

func productToProto(p product.Product) *productv1.Product {
	return &productv1.Product{SkuId: p.SKUID, Title: p.Title, Price: p.Price, Stock: p.Stock}
}

var statuses = map[product.Status]productv1.ActivityStatus{
	product.StatusUpcoming: productv1.ActivityStatus_ACTIVITY_STATUS_UPCOMING,
	product.StatusActive:   productv1.ActivityStatus_ACTIVITY_STATUS_ACTIVE,
	product.StatusSoldOut:  productv1.ActivityStatus_ACTIVITY_STATUS_SOLD_OUT,
	product.StatusEnded:    productv1.ActivityStatus_ACTIVITY_STATUS_ENDED,
}

func (s *Server) activityToProto(a product.Activity) *productv1.Activity {
	return &productv1.Activity{
		ActivityId:        a.ID,
		SkuId:             a.SKUID,
		Title:             a.Title,
		Price:             a.Price,
		Stock:             a.Stock,
		Remaining:         a.Remaining,
		PerUserLimit:      a.PerUserLimit,
		StartsAt:          timestamppb.New(a.StartsAt),
		EndsAt:            timestamppb.New(a.EndsAt),
		Status:            statuses[s.svc.Status(a)],
		ChallengeRequired: a.ChallengeRequired,
	}
}

// timeFromProto returns the zero time for an absent timestamp, so that
// validation reports it missing instead of reading it as 1970.
func timeFromProto(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}
