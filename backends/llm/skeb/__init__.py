"""SKeB (spec section 5): the domain graph, entity extraction, entanglement metrics M1-M9,
prompt framings, the judge and the analysis."""
