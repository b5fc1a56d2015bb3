"""Federation evals: does sharing learned weights help the nodes that share them?"""
