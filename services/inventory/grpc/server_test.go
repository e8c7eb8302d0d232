package grpc_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/services/inventory"
	invgrpc "github.com/flashsale/flashsale/services/inventory/grpc"
)

func TestErrorsMapDomainErrorsToCodes(t *testing.T) {
	tests := []struct {
		err  error
		want errcode.Code
	}{
		{inventory.ErrSoldOut, errcode.SoldOut},
		{inventory.ErrLimitExceeded, errcode.LimitExceeded},
		{inventory.ErrNotPreheated, errcode.NotFound},
		{inventory.ErrReservationNotFound, errcode.NotFound},
		{inventory.ErrAlreadyConfirmed, errcode.Conflict},
		{inventory.ErrAlreadyReleased, errcode.Conflict},
		{inventory.ErrAlreadyOrdered, errcode.Conflict},
		{inventory.ErrInvalid, errcode.InvalidArgument},
		{errors.New("redis: connection refused"), errcode.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			// Handlers return errors wrapped with the operation.
			st := invgrpc.Errors.Status(fmt.Errorf("reserve activity 1: %w", tt.err))
			if got := errcode.Of(st); got != tt.want {
				t.Errorf("code: got %s, want %s", got, tt.want)
			}
		})
	}
}
