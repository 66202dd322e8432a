"""The shipping service: a shipment per confirmed order, dispatched by the warehouse or cancelled with its order."""
