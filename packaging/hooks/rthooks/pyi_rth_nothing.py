# A run-time hook that does nothing: it stands in for a stock one (see ../rthooks.dat).
